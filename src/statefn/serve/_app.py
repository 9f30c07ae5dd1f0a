"""The ASGI application: its routes (all in ``ROUTES``), its errors, and its life.

    app = create_app(service, token=None)     # a Starlette app; serve it with uvicorn

While the app runs, it polls the project folder for changed files (``poll_s``) and fires
cron schedules. Every ``ServiceError`` becomes its JSON error; any other exception is
logged and answered with a 500 that shows no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from . import _api
from ._auth import Guesses, TokenAuth, login_form, login_submit, logout
from ._cron import Clock, Scheduler
from ._hooks import WebhookEndpoint
from ._http import DEFAULT_MAX_BODY, error_response, json_response
from ._openapi import openapi_document
from ._service import Service, ServiceError
from ._ui import ui_routes

__all__ = ["ROUTES", "create_app"]

_log = logging.getLogger("statefn.serve")

POLL_S = 1.0  # how often the project folder is checked for changed files


async def _openapi(request: Request) -> Response:
    return json_response(openapi_document())


# Every route of the JSON API, webhooks, health and login; ``create_app`` adds the UI's.
# Webhooks first: the router tries routes in order, and they are the busiest.
ROUTES: tuple[BaseRoute, ...] = (
    Route("/hooks/{workflow}/{trigger}", WebhookEndpoint(), methods=["POST"]),
    Route("/api/workflows", _api.list_workflows, methods=["GET"]),
    Route("/api/workflows/{name}/runs", _api.start_run, methods=["POST"]),
    Route("/api/runs", _api.list_runs, methods=["GET"]),
    Route("/api/runs/{run_id}", _api.get_run, methods=["GET"]),
    Route("/api/runs/{run_id}/logs", _api.run_logs, methods=["GET"]),
    Route("/api/runs/{run_id}/steps/{key}/state", _api.step_state, methods=["GET"]),
    Route("/api/runs/{run_id}/retry", _api.retry_run, methods=["POST"]),
    Route("/api/runs/{run_id}/cancel", _api.cancel_run, methods=["POST"]),
    Route("/healthz", _api.healthz, methods=["GET"]),
    Route("/openapi.json", _openapi, methods=["GET"]),
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login_submit, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
)


async def _service_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ServiceError)
    return error_response(error)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return error_response(ServiceError(str(error.detail), status=error.status_code))


async def _internal_error(request: Request, error: Exception) -> Response:
    _log.exception("%s %s failed", request.method, request.url.path, exc_info=error)
    message = f"Internal error: {type(error).__name__} (the server's log has the details)"
    return error_response(ServiceError(message, status=500))


async def _poll_project(service: Service, poll_s: float) -> None:
    while True:
        await asyncio.sleep(poll_s)
        try:
            if await service.refresh():
                _log.info("reloaded the workflows of %s", service.project.root)
        except Exception:
            _log.exception("could not reload the workflows of %s", service.project.root)


def create_app(
    service: Service,
    *,
    token: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    poll_s: float = POLL_S,
    clock: Clock | None = None,
) -> Starlette:
    """The server's ASGI app over ``service``. ``token``: every request but the open ones
    must carry it (see ``_auth``); ``max_body``: the largest request body in bytes;
    ``clock``: the cron scheduler's clock."""
    scheduler = Scheduler(service, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(_poll_project(service, poll_s)),
            asyncio.create_task(scheduler.run()),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    routes = [*ROUTES, *ui_routes(service)]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(TokenAuth, token=token)],
        exception_handlers={
            ServiceError: _service_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.token = token
    app.state.guesses = Guesses()
    app.state.max_body = max_body
    app.state.scheduler = scheduler
    return app
