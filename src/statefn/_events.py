"""Lifecycle events and their delivery.

Each event has one payload shape (see the contract, section 3), made by the function of
its name below (``job_complete(...)`` for ``Event.JOB_COMPLETE``). Events reach the user's
``on_event(name, payload)`` in order, from the thread that runs the workflow's event loop,
even when they were raised in a step's worker thread (``log`` lines): every event goes
through one queue, drained by one task.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "Event",
    "EventBus",
    "EventHandler",
    "Payload",
    "init_complete",
    "init_start",
    "job_complete",
    "job_error",
    "job_start",
    "load_state",
    "log",
    "now_iso",
    "workflow_complete",
    "workflow_start",
]

Payload = dict[str, Any]
EventHandler = Callable[[str, Payload], Any]


class Event(StrEnum):
    """The names of the lifecycle events."""

    WORKFLOW_START = "workflow-start"
    WORKFLOW_COMPLETE = "workflow-complete"
    INIT_START = "init-start"
    INIT_COMPLETE = "init-complete"
    JOB_START = "job-start"
    JOB_COMPLETE = "job-complete"
    JOB_ERROR = "job-error"
    LOAD_STATE = "load-state"
    LOG = "log"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- one payload shape per event ---------------------------------------------------------


def workflow_start(plan_id: str | None) -> Payload:
    return {"plan_id": plan_id, "time": now_iso()}


def workflow_complete(state: Any, duration_ms: float) -> Payload:
    return {"state": state, "duration_ms": duration_ms}


def init_start(job_id: str) -> Payload:
    return {"job_id": job_id}


def init_complete(job_id: str, duration_ms: float) -> Payload:
    return {"job_id": job_id, "duration_ms": duration_ms}


def job_start(job_id: str) -> Payload:
    return {"job_id": job_id}


def job_complete(
    job_id: str, duration_ms: float, state: Any, next_ids: list[str], mem: dict[str, int]
) -> Payload:
    return {
        "job_id": job_id,
        "duration_ms": duration_ms,
        "state": state,
        "next": next_ids,
        "mem": mem,
    }


def job_error(
    job_id: str, duration_ms: float, error: dict[str, Any], state: Any, next_ids: list[str]
) -> Payload:
    return {
        "job_id": job_id,
        "duration_ms": duration_ms,
        "error": error,
        "state": state,
        "next": next_ids,
    }


def load_state(state_id: str, duration_ms: float) -> Payload:
    return {"state_id": state_id, "duration_ms": duration_ms}


def log(job_id: str, level: str, message: str) -> Payload:
    return {"job_id": job_id, "level": level, "message": message, "time": now_iso()}


class EventBus:
    """Delivers events to one handler, in order, on the run's event loop.

    ``emit`` may be called from the loop's thread; ``emit_threadsafe`` from any thread (the
    bus must be made on the loop's thread).
    Without a handler both do nothing, so a run that nobody listens to pays nothing.
    A handler that raises is reported through the runtime logger and does not stop the run.
    """

    def __init__(
        self, handler: EventHandler | None, loop: asyncio.AbstractEventLoop, logger: logging.Logger
    ) -> None:
        self._handler = handler
        self._loop = loop
        self._logger = logger
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._loop_thread = threading.get_ident()

    @property
    def listening(self) -> bool:
        return self._handler is not None

    def emit(self, event: Event, payload: dict[str, Any]) -> None:
        if self._handler is None:
            return
        if self._task is None:
            self._task = self._loop.create_task(self._deliver())
        self._queue.put_nowait((event.value, payload))

    def emit_threadsafe(self, event: Event, payload: dict[str, Any]) -> None:
        if self._handler is None or self._loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            # A step running inline: queue now, in order with the step's other events.
            self.emit(event, payload)
            return
        try:
            self._loop.call_soon_threadsafe(self.emit, event, payload)
        except RuntimeError:
            # The loop closed between the check and the call: the run is over.
            return

    async def _deliver(self) -> None:
        try:
            while True:
                await self._send(*await self._queue.get())
        except asyncio.CancelledError:
            # The run is being torn down (interrupted): what was emitted is still delivered.
            while not self._queue.empty():
                await self._send(*self._queue.get_nowait())
            raise

    async def _send(self, name: str, payload: Payload) -> None:
        assert self._handler is not None
        try:
            outcome = self._handler(name, payload)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            self._logger.exception("on_event handler raised on %s", name)
        finally:
            self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every event emitted so far has been delivered, or delivery has stopped
        (its task cancelled, as when a run is interrupted)."""
        if self._task is None or self._task.done():
            return
        joined = asyncio.ensure_future(self._queue.join())
        try:
            await asyncio.wait({joined, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            joined.cancel()

    async def close(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            self._task = None
