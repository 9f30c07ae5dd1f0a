"""Lifecycle events and their delivery.

Each event has one payload shape (see the contract, section 3), made by the function of
its name below (``job_complete(...)`` for ``Event.JOB_COMPLETE``). Events reach the user's
``on_event(name, payload)`` in order, from the thread that runs the workflow, even when
they were raised in a step's worker thread (``log`` lines): on an event loop every event
goes through one queue, drained by one task; in an inline run (see ``_scheduler``) each is
delivered as it is emitted.
"""

from __future__ import annotations

import collections
import contextvars
import inspect
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ._scheduler import LoopScheduler, Scheduler, complete

if TYPE_CHECKING:
    import asyncio

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
    """Delivers events to one handler, in order, on the thread that runs the workflow.

    ``emit`` may be called from that thread; ``emit_threadsafe`` from any thread (the bus
    must be made on the run's thread). On an event loop, events wait in a queue that one
    task delivers; inline, each is delivered as it is emitted, and one emitted from another
    thread waits for the run's thread to deliver it (before its next event, or at ``drain``).
    Without a handler both do nothing, so a run that nobody listens to pays nothing.
    A handler that raises is reported through the runtime logger and does not stop the run.
    """

    def __init__(
        self, handler: EventHandler | None, scheduler: Scheduler, logger: logging.Logger
    ) -> None:
        self._handler = handler
        self._scheduler = scheduler
        self._logger = logger
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
        self._task: asyncio.Task[None] | None = None
        # Inline: events emitted on other threads, for the run's thread to deliver; and the
        # context handlers are called in (the run's, as the bus is made: not a step's).
        self._arrived: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._context = contextvars.copy_context()
        self._run_thread = threading.get_ident()

    @property
    def listening(self) -> bool:
        return self._handler is not None

    def emit(self, event: Event, payload: dict[str, Any]) -> None:
        if self._handler is None:
            return
        scheduler = self._scheduler
        if isinstance(scheduler, LoopScheduler):
            if self._queue is None:
                import asyncio

                self._queue = asyncio.Queue()
                self._task = scheduler.loop.create_task(self._deliver())
            self._queue.put_nowait((event.value, payload))
            return
        self._deliver_arrived()
        complete(self._send(event.value, payload), self._context.copy())

    def emit_threadsafe(self, event: Event, payload: dict[str, Any]) -> None:
        scheduler = self._scheduler
        if self._handler is None or (
            isinstance(scheduler, LoopScheduler) and scheduler.loop.is_closed()
        ):
            return
        if threading.get_ident() == self._run_thread:
            # A step running inline: queue now, in order with the step's other events.
            self.emit(event, payload)
            return
        if not isinstance(scheduler, LoopScheduler):
            self._arrived.append((event.value, payload))
            return
        try:
            scheduler.loop.call_soon_threadsafe(self.emit, event, payload)
        except RuntimeError:
            # The loop closed between the check and the call: the run is over.
            return

    def _deliver_arrived(self) -> None:
        while self._arrived:
            complete(self._send(*self._arrived.popleft()), self._context.copy())

    async def _deliver(self) -> None:
        import asyncio

        queue = self._queue
        assert queue is not None
        try:
            while True:
                await self._send_queued(queue, await queue.get())
        except asyncio.CancelledError:
            # The run is being torn down (interrupted): what was emitted is still delivered.
            while not queue.empty():
                await self._send_queued(queue, queue.get_nowait())
            raise

    async def _send_queued(
        self, queue: asyncio.Queue[tuple[str, dict[str, Any]]], event: tuple[str, dict[str, Any]]
    ) -> None:
        try:
            await self._send(*event)
        finally:
            queue.task_done()

    async def _send(self, name: str, payload: Payload) -> None:
        assert self._handler is not None
        try:
            outcome = self._handler(name, payload)
            if inspect.isawaitable(outcome):
                await self._scheduler.foreign(outcome)
        except Exception:
            self._logger.exception("on_event handler raised on %s", name)

    async def drain(self) -> None:
        """Wait until every event emitted so far has been delivered, or delivery has stopped
        (its task cancelled, as when a run is interrupted)."""
        self._deliver_arrived()
        if self._task is None or self._task.done():
            return
        import asyncio

        assert self._queue is not None
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
