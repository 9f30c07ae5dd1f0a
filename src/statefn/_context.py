"""What adaptor code may know about the run it works in.

``run_resource(key, factory)`` gives an adaptor an object (an HTTP client, a connection
pool) shared by the operations of one run on one event loop and closed when the run ends:
nothing is shared between runs and nothing lives in module globals.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ._scheduler import running_loop

__all__ = ["RunContext", "current_run", "idempotency_key", "run_resource"]

T = TypeVar("T")

_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "statefn_run", default=None
)
# The key of the step run whose operation is executing (such as ``post-1``).
_step_key: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "statefn_step_key", default=None
)


class RunContext:
    """One run's identity and per-loop resources."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._resources: dict[tuple[int, str], Any] = {}

    def resource(self, key: str, factory: Callable[[], T]) -> T:
        loop = running_loop()
        slot = (0 if loop is None else id(loop), key)
        if slot not in self._resources:
            self._resources[slot] = factory()
        value: T = self._resources[slot]
        return value

    async def close_loop_resources(self) -> None:
        """Close the resources made on the running loop (called as each loop shuts down)."""
        loop_id = id(running_loop())
        for slot in [s for s in self._resources if s[0] in (loop_id, 0)]:
            await _close(self._resources.pop(slot))


async def _close(resource: Any) -> None:
    closer = getattr(resource, "aclose", None) or getattr(resource, "close", None)
    if closer is None:
        return
    outcome = closer()
    if inspect.isawaitable(outcome):
        await outcome


def current_run() -> RunContext | None:
    """The run whose operation is executing, or None outside a run."""
    return _current.get()


def run_resource(key: str, factory: Callable[[], T]) -> T:
    """An object made once per run and event loop by ``factory``, closed when the run ends.

    Outside a run, a new object is made on each call.
    """
    run = _current.get()
    if run is None:
        return factory()
    return run.resource(key, factory)


def idempotency_key() -> str | None:
    """A stable key for the step run whose operation is executing: ``run_id:step_key``
    (such as ``3f2a…:post-1``), or None outside a step.

    It is the same each time the step run is attempted, also when a distributed worker
    runs a step again after another worker died in it: send it to services that drop
    repeated requests (the http adaptor does, as ``Idempotency-Key``, when the step's
    configuration sets ``"idempotency": true``)."""
    run, key = _current.get(), _step_key.get()
    return None if run is None or key is None else f"{run.run_id}:{key}"


def enter_run(run: RunContext, step_key: str | None = None) -> contextvars.Token[RunContext | None]:
    _step_key.set(step_key)
    return _current.set(run)
