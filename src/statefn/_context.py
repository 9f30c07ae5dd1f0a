"""What adaptor code may know about the run it works in.

``run_resource(key, factory)`` gives an adaptor an object (an HTTP client, a connection
pool) shared by the operations of one run on one event loop and closed when the run ends:
nothing is shared between runs and nothing lives in module globals.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["RunContext", "current_run", "run_resource"]

T = TypeVar("T")

_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "statefn_run", default=None
)


class RunContext:
    """One run's identity and per-loop resources."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._resources: dict[tuple[int, str], Any] = {}

    def resource(self, key: str, factory: Callable[[], T]) -> T:
        try:
            loop_id = id(asyncio.get_running_loop())
        except RuntimeError:
            loop_id = 0
        slot = (loop_id, key)
        if slot not in self._resources:
            self._resources[slot] = factory()
        value: T = self._resources[slot]
        return value

    async def close_loop_resources(self) -> None:
        """Close the resources made on the running loop (called as each loop shuts down)."""
        loop_id = id(asyncio.get_running_loop())
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


def enter_run(run: RunContext) -> contextvars.Token[RunContext | None]:
    return _current.set(run)
