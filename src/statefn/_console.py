"""The job console: where ``print()`` and log calls in job code go.

Each line is masked, passed to the run's ``job_logger`` and sent as a ``log`` event. The
console is safe to call from a step's worker thread.
"""

from __future__ import annotations

import logging
from typing import Literal

from . import _events as events
from ._events import Event, EventBus
from ._masking import Masker

__all__ = ["JobConsole", "LogLevel"]

LogLevel = Literal["debug", "info", "warn", "error"]

_LOGGING_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


class JobConsole:
    """Output of one step's job code."""

    __slots__ = ("_bus", "_closed", "_logger", "_masker", "step_id")

    def __init__(self, step_id: str, logger: logging.Logger, bus: EventBus, masker: Masker) -> None:
        self.step_id = step_id
        self._logger = logger
        self._bus = bus
        self._masker = masker
        self._closed = False

    def close(self) -> None:
        """Drop lines written after the step ended (by an abandoned, timed-out operation)."""
        self._closed = True

    def log(self, level: LogLevel, message: str, values: tuple[object, ...] = ()) -> None:
        """Write ``message``; ``values`` are what job code printed or logged to make it,
        kept on the log record (``job_values``) for loggers that show them their own way."""
        if self._closed:
            return
        message = self._masker.text(message)
        extra = {"job_id": self.step_id, "job_values": values}
        self._logger.log(_LOGGING_LEVELS[level], message, extra=extra)
        if self._bus.listening:
            self._bus.emit_threadsafe(Event.LOG, events.log(self.step_id, level, message))
