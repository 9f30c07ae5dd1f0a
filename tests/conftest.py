"""Shared fixtures: an event recorder and loggers that keep their records."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest


class EventLog:
    """An ``on_event`` handler that keeps every event it receives, in order.

    Payloads are kept as received (not copied), so a test can check that the runtime did
    not hand out objects that later steps change.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, payload: dict[str, Any]) -> None:
        self.events.append((name, payload))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def of(self, name: str) -> list[dict[str, Any]]:
        """The payloads of every event called ``name``, in order."""
        return [payload for event, payload in self.events if event == name]

    def step_names(self, job_id: str) -> list[str]:
        """The names of the events about step ``job_id`` (log lines left out)."""
        return [
            name
            for name, payload in self.events
            if payload.get("job_id") == job_id and name != "log"
        ]


class RecordList(logging.Handler):
    """A logging handler that keeps every record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, min_level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= min_level]


@pytest.fixture
def events() -> EventLog:
    return EventLog()


def _captured_logger() -> tuple[logging.Logger, RecordList]:
    # A fresh name per test, not propagating, so no record leaks between tests or to root.
    logger = logging.getLogger(f"statefn-test.{uuid.uuid4().hex}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = RecordList()
    logger.addHandler(handler)
    return logger, handler


@pytest.fixture
def runtime_log() -> tuple[logging.Logger, RecordList]:
    """A logger to pass as ``logger=`` and the handler holding what it received."""
    return _captured_logger()


@pytest.fixture
def job_log() -> tuple[logging.Logger, RecordList]:
    """A logger to pass as ``job_logger=`` and the handler holding what it received."""
    return _captured_logger()
