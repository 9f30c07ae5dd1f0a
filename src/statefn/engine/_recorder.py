"""The engine's writer to the run ledger: one thread, writes in arrival order.

The supervisor must never wait for a database, so it hands each write to this thread. A
run's outcome is given to its caller only after the ledger has committed it, so a caller
that reads the ledger after ``result()`` finds the run finished. The thread also proves the
engine alive (a heartbeat) and marks the runs of engines that are gone as ``lost``.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..ledger._errors import StaleAttemptError

if TYPE_CHECKING:
    from ..ledger import Ledger

__all__ = ["HEARTBEAT_S", "LOST_AFTER_S", "Recorder"]

# An engine writes a heartbeat this often; another engine declares it gone (and its
# unfinished runs lost) when its heartbeat is this old. Together: lost within a minute.
HEARTBEAT_S = 5.0
LOST_AFTER_S = 30.0

_log = logging.getLogger("statefn.engine")
_Item = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class Recorder:
    """Writes to one ledger from one thread, in the order the writes were asked for."""

    def __init__(self, ledger: Ledger, engine_id: str) -> None:
        self.ledger = ledger
        self.engine_id = engine_id
        self._queue: queue.SimpleQueue[_Item | tuple[()] | None] = queue.SimpleQueue()
        ledger.register_engine(engine_id, socket.gethostname(), os.getpid())
        ledger.mark_lost(dead_after_s=LOST_AFTER_S)
        self._thread = threading.Thread(target=self._loop, name="statefn-ledger", daemon=True)
        self._thread.start()

    def write(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Ask for ``ledger.<method>(*args, **kwargs)``; it runs on the writer thread."""
        self._queue.put((getattr(self.ledger, method), args, kwargs))

    def then(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the writer thread once every earlier write is done."""
        self._queue.put((callback, (), {"_after": True}))

    def close(self) -> None:
        """Finish the writes asked for, retire this engine, close the ledger."""
        self._queue.put(None)
        self._thread.join()
        self._call(self.ledger.retire_engine, (self.engine_id,), {})
        self.ledger.close()

    def _loop(self) -> None:
        next_beat = time.monotonic() + HEARTBEAT_S
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, next_beat - time.monotonic()))
            except queue.Empty:
                item = ()
            if item is None:
                return
            if item:
                function, args, kwargs = item
                if kwargs.pop("_after", False):
                    function()
                else:
                    self._call(function, args, kwargs)
            if time.monotonic() >= next_beat:
                self._call(self._beat, (), {})
                next_beat = time.monotonic() + HEARTBEAT_S

    def _beat(self) -> None:
        self.ledger.heartbeat(self.engine_id)
        self.ledger.mark_lost(dead_after_s=LOST_AFTER_S)

    @staticmethod
    def _call(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # A ledger that fails is retried briefly; after that the engine keeps running runs
        # and says what it could not record.
        for attempt in range(3):
            try:
                function(*args, **kwargs)
                return
            except StaleAttemptError as error:
                _log.warning("Not recorded: %s", error)
                return
            except Exception as error:
                if attempt == 2:
                    _log.error("The run ledger could not record %s: %s", function.__name__, error)
                else:
                    time.sleep(0.1 * (attempt + 1))
