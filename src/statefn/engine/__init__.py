"""The engine: many runs at once, each in a fresh worker process with hard limits.

    from statefn.engine import Engine

    with Engine(workers=2, ledger="sqlite:///runs.db") as engine:
        handle = engine.submit(plan, state)
        for name, payload in handle.events():
            ...
        outcome = handle.result()

The runtime core runs a plan in the caller's process; the engine wraps it in processes it
can kill: a warm template forks a fresh worker for every run (see ``_template``), one
supervisor thread watches them (``_supervisor``), and an optional ledger records every run
(``statefn.ledger``). See docs/engine.md.
"""

from .._errors import (
    CredentialLoadError,
    ExitError,
    LostError,
    OOMError,
    RunTimeoutError,
    WorkerStartError,
)
from ._engine import CROSSING_OPTIONS, Engine
from ._handle import REASONS, RunHandle, RunOutcome
from ._local import run_recorded

__all__ = [
    "CROSSING_OPTIONS",
    "REASONS",
    "CredentialLoadError",
    "Engine",
    "ExitError",
    "LostError",
    "OOMError",
    "RunHandle",
    "RunOutcome",
    "RunTimeoutError",
    "WorkerStartError",
    "run_recorded",
]
