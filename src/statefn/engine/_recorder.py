"""The engine's writer to the run ledger: one thread, writes in arrival order.

The supervisor must never wait for a database, so it hands each write to this thread. A
run's events (``events()``) and outcome are given to its caller only after the ledger has
committed them, so a caller that reads the ledger after ``result()`` finds the run
finished. The thread also proves the engine alive (a heartbeat) and marks the runs of
engines that are gone as ``lost``.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..ledger._errors import StaleAttemptError

if TYPE_CHECKING:
    from ..ledger import Ledger

__all__ = ["HEARTBEAT_S", "LOST_AFTER_S", "Recorder"]

# An engine writes a heartbeat this often; another engine declares it gone (and its
# unfinished runs lost) when its heartbeat is this old. Together: lost within a minute.
HEARTBEAT_S = 5.0
LOST_AFTER_S = 30.0

# The most writes committed in one transaction.
BATCH_MAX = 500

_log = logging.getLogger("statefn.engine")


@dataclass(slots=True)
class _Item:
    """A write (``function(*args, **kwargs)``), or with ``after`` a callback to call once
    every earlier write is done; ``confirmed`` is completed when the write is. With
    ``rows``, the write is ``function(rows)``, which a batch makes once for the rows of
    every such write of ``function`` that comes next to it."""

    function: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    confirmed: Future[None] | None = None
    after: bool = False
    rows: list[Any] | None = None


class Recorder:
    """Writes to one ledger from one thread, in the order the writes were asked for.

    Writes that queue up while the thread is busy are committed together, in one
    transaction (up to ``BATCH_MAX``): under load one commit serves many runs. A batch that
    fails is rolled back and its writes are made again one by one, so that one bad write
    does not take the others with it.
    """

    def __init__(self, ledger: Ledger, engine_id: str) -> None:
        self.ledger = ledger
        self.engine_id = engine_id
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        ledger.register_engine(engine_id, socket.gethostname(), os.getpid())
        ledger.mark_lost(dead_after_s=LOST_AFTER_S)
        self._thread = threading.Thread(target=self._loop, name="statefn-ledger", daemon=True)
        self._thread.start()

    def write(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Ask for ``ledger.<method>(*args, **kwargs)``; it runs on the writer thread."""
        self._queue.put(_Item(getattr(self.ledger, method), args, kwargs))

    def write_confirmed(self, method: str, *args: Any, **kwargs: Any) -> Future[None]:
        """``write``, with a future that is done once the write is committed; its exception
        is the ledger's error when the write failed (after the retries)."""
        confirmed: Future[None] = Future()
        self._queue.put(_Item(getattr(self.ledger, method), args, kwargs, confirmed))
        return confirmed

    def write_rows(self, method: str, rows: list[Any]) -> Future[None]:
        """``write_confirmed(method, rows)`` for a method that writes a list of rows (such
        as ``runs_queued``): the rows of such writes that queue up one after another are
        written by one call, in the batch's one transaction."""
        confirmed: Future[None] = Future()
        function = getattr(self.ledger, method)
        self._queue.put(_Item(function, (rows,), confirmed=confirmed, rows=rows))
        return confirmed

    def then(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the writer thread once every earlier write is done."""
        self._queue.put(_Item(callback, after=True))

    def close(self) -> None:
        """Finish the writes asked for, retire this engine, close the ledger."""
        self._queue.put(None)
        self._thread.join()
        self._call(self.ledger.retire_engine, (self.engine_id,), {})
        self.ledger.close()

    def _loop(self) -> None:
        next_beat = time.monotonic() + HEARTBEAT_S
        while True:
            batch, stopping = self._take(max(0.0, next_beat - time.monotonic()))
            self._write(batch)
            if stopping:
                return
            if time.monotonic() >= next_beat:
                self._call(self._beat, (), {})
                next_beat = time.monotonic() + HEARTBEAT_S

    def _take(self, wait_s: float) -> tuple[list[_Item], bool]:
        """The items waiting (after waiting up to ``wait_s`` for the first), at most
        ``BATCH_MAX``; and whether ``close()`` asked the thread to stop after them."""
        batch: list[_Item] = []
        try:
            item = self._queue.get(timeout=wait_s)
        except queue.Empty:
            return batch, False
        while item is not None:
            batch.append(item)
            if len(batch) == BATCH_MAX:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _write(self, batch: list[_Item]) -> None:
        writes = [item for item in batch if not item.after]
        failures: dict[int, Exception | None] = {}
        if not (len(writes) > 1 and self._together(writes)):
            failures = {
                id(item): self._call(item.function, item.args, item.kwargs) for item in writes
            }
        for item in batch:
            if item.after:
                item.function()
            # A future its waiter cancelled takes no result.
            elif item.confirmed is not None and item.confirmed.set_running_or_notify_cancel():
                failure = failures.get(id(item))
                if failure is not None:
                    item.confirmed.set_exception(failure)
                else:
                    item.confirmed.set_result(None)

    def _together(self, writes: list[_Item]) -> bool:
        """Make ``writes`` in one transaction, the rows of neighbouring row writes of one
        method in one call; whether it committed."""
        calls: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        rows: list[Any] | None = None  # of the last call, when it is a row write
        for item in writes:
            if item.rows is not None and rows is not None and calls[-1][0] == item.function:
                rows.extend(item.rows)
            elif item.rows is not None:
                rows = list(item.rows)
                calls.append((item.function, (rows,), {}))
            else:
                rows = None
                calls.append((item.function, item.args, item.kwargs))
        try:
            with self.ledger.batch():
                for function, args, kwargs in calls:
                    function(*args, **kwargs)
        except Exception:
            return False
        return True

    def _beat(self) -> None:
        self.ledger.heartbeat(self.engine_id)
        self.ledger.mark_lost(dead_after_s=LOST_AFTER_S)

    @staticmethod
    def _call(
        function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Exception | None:
        """Make one write; the error that stopped it, if it failed after the retries."""
        # A ledger that fails is retried briefly; after that the engine keeps running runs
        # and says what it could not record.
        for attempt in range(3):
            try:
                function(*args, **kwargs)
                return None
            except StaleAttemptError as error:
                # A superseded delivery's write: nothing to retry, nothing recorded.
                _log.warning("Not recorded: %s", error)
                return error
            except Exception as error:
                if attempt == 2:
                    _log.error("The run ledger could not record %s: %s", function.__name__, error)
                    return error
                time.sleep(0.1 * (attempt + 1))
        return None
