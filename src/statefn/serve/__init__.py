"""``statefn serve``: a folder of workflows as a running service (contract section 12).

    from statefn.serve import Project, Service, EngineRunner, create_app
    from statefn.engine import Engine
    from statefn import ledger

    service = Service(Project(Path("flows")), ledger.open(url),
                      EngineRunner(Engine(workers=2, ledger=url)))
    app = create_app(service, token=None)        # an ASGI app: uvicorn.run(app)

``Service`` is what both faces of the server use (the JSON API in ``_api``, the web UI);
``create_app`` lists every route in one place (``ROUTES``). See docs/serve.md.
"""

from ._app import ROUTES, create_app
from ._cron import Clock, Scheduler, SystemClock
from ._project import Edge, Project, Trigger, Workflow
from ._runners import BrokerRunner, EngineRunner, Runner
from ._service import (
    Conflict,
    Invalid,
    NotFound,
    Service,
    ServiceError,
    Unavailable,
    signature,
)

__all__ = [
    "ROUTES",
    "BrokerRunner",
    "Clock",
    "Conflict",
    "Edge",
    "EngineRunner",
    "Invalid",
    "NotFound",
    "Project",
    "Runner",
    "Scheduler",
    "Service",
    "ServiceError",
    "SystemClock",
    "Trigger",
    "Unavailable",
    "Workflow",
    "create_app",
    "signature",
]
