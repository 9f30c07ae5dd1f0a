"""A submitted run as its caller sees it: a handle with its events and its outcome."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import Future
from typing import Any

from .._state import decode

__all__ = ["REASONS", "ArrivedEvent", "RunHandle", "RunOutcome"]

REASONS = ("success", "fail", "crash", "kill", "exception", "cancel", "lost")
# A handle keeps its events' states for ``events()`` up to this many bytes; past that the
# oldest are let go (their events say ``"state_withheld": "not kept"``), so that a run
# cannot fill the engine's memory with states nobody reads.
KEPT_STATE_BYTES = 256 * 1024 * 1024
NOT_KEPT = "not kept"


class RunOutcome:
    """How a run ended: ``reason`` (see ``REASONS``), the result ``state`` (what ``run``
    would return, or ``None``), the ``error`` record (or ``None``) and ``duration_ms``.

    A state that arrived from a worker stays encoded until it is first read, so the
    engine's own thread never spends its time decoding results."""

    __slots__ = ("_blob", "_state", "duration_ms", "error", "reason", "run_id")

    def __init__(
        self,
        run_id: str,
        reason: str,
        state: Any,
        error: dict[str, Any] | None,
        duration_ms: float,
        *,
        blob: bytes | None = None,
    ) -> None:
        self.run_id = run_id
        self.reason = reason
        self._state = state
        self._blob = blob
        self.error = error
        self.duration_ms = duration_ms

    @property
    def state(self) -> Any:
        if self._blob is not None:
            self._state, self._blob = decode(self._blob), None
        return self._state

    def __repr__(self) -> str:
        return f"RunOutcome(run_id={self.run_id!r}, reason={self.reason!r}, error={self.error!r})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "reason": self.reason,
            "state": self.state,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }


class ArrivedEvent:
    """An event as it arrived: its state stays encoded until someone reads it."""

    __slots__ = ("blob", "has_state", "name", "payload", "withheld")

    def __init__(
        self,
        name: str,
        payload: dict[str, Any],
        has_state: bool,
        blob: bytes | None,
        withheld: str | None,
    ) -> None:
        self.name = name
        self.payload = payload
        self.has_state = has_state
        self.blob = blob
        self.withheld = withheld

    def decoded(self) -> tuple[str, dict[str, Any]]:
        payload = dict(self.payload)
        if self.has_state:
            payload["state"] = decode(self.blob) if self.blob is not None else None
            if self.withheld:
                payload["state_withheld"] = self.withheld
        return self.name, payload


class RunHandle:
    """A run submitted to an ``Engine``: its id, its events, its outcome.

    ``events()`` yields the run's events in order (from the first, whenever it is called)
    and ends with the run (on an engine with a ledger, each once the ledger has committed it
    and those before it); ``result()`` blocks for the ``RunOutcome``; ``cancel()`` ends the
    run with reason ``cancel``. ``await handle`` and ``async for`` work in an event loop.

    ``recorded`` is a future that is done once the engine's ledger has committed the run as
    ``queued`` (at once without a ledger; ``submit`` returns before the write): a service
    that promises "your run is recorded" waits for it. Its exception is the ledger's error
    when the run could not be recorded.
    """

    def __init__(self, run_id: str, cancel: Callable[[RunHandle], None]) -> None:
        self.id = run_id
        self._cancel = cancel
        self._events: list[ArrivedEvent] = []
        self._kept_bytes = 0
        self._oldest_kept = 0
        self._changed = threading.Condition()
        self._ended = False
        self._future: Future[RunOutcome] = Future()
        self.recorded: Future[None] = Future()
        self.recorded.set_result(None)

    def __repr__(self) -> str:
        return f"<RunHandle {self.id} {'ended' if self._ended else 'running'}>"

    # -- the engine's side ------------------------------------------------------------------

    def add_event(self, event: ArrivedEvent) -> None:
        with self._changed:
            self._events.append(event)
            self._kept_bytes += len(event.blob or b"")
            while self._kept_bytes > KEPT_STATE_BYTES:
                oldest = self._events[self._oldest_kept]
                self._oldest_kept += 1
                if oldest.blob is not None:
                    self._kept_bytes -= len(oldest.blob)
                    oldest.blob, oldest.withheld = None, NOT_KEPT
            self._changed.notify_all()

    def finish(self, outcome: RunOutcome) -> None:
        with self._changed:
            if self._ended:
                return
            self._ended = True
            self._changed.notify_all()
        self._future.set_result(outcome)

    @property
    def ended(self) -> bool:
        return self._ended

    # -- the caller's side ------------------------------------------------------------------

    def events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        index = 0
        while True:
            with self._changed:
                while index >= len(self._events) and not self._ended:
                    self._changed.wait()
                if index >= len(self._events):
                    return
                event = self._events[index]
            index += 1
            yield event.decoded()

    def result(self, timeout: float | None = None) -> RunOutcome:
        """The run's outcome, once it has ended (``TimeoutError`` after ``timeout`` s)."""
        return self._future.result(timeout)

    def cancel(self) -> None:
        """End the run (reason ``cancel``); nothing happens if it has already ended."""
        if not self._ended:
            self._cancel(self)

    async def result_async(self) -> RunOutcome:
        # Shielded: a caller's task that is cancelled while it waits must not cancel the
        # run's future, which the engine completes later from its own thread.
        return await asyncio.shield(asyncio.wrap_future(self._future))

    async def recorded_async(self) -> None:
        """Wait (in an event loop) until the ledger has the run; see ``recorded``."""
        await asyncio.shield(asyncio.wrap_future(self.recorded))

    def __await__(self) -> Generator[Any, None, RunOutcome]:
        return self.result_async().__await__()

    async def __aiter__(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        events = self.events()
        done = object()
        while True:
            item = await asyncio.to_thread(next, events, done)
            if item is done:
                return
            yield item  # type: ignore[misc]
