"""What the read API returns: a run, a step run, a log line, as dataclasses with ``to_dict``.

A run's ``status`` is ``queued``, then ``started``, then its final reason (``success``,
``fail``, ``crash``, ``kill``, ``exception``, ``cancel`` or ``lost``). A state that was not
stored has a ``None`` reference and its ``*_withheld`` field says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

__all__ = ["FINAL_REASONS", "STATUSES", "LogLine", "LogRecord", "RunRecord", "StepRecord"]

FINAL_REASONS = ("success", "fail", "crash", "kill", "exception", "cancel", "lost")
STATUSES = ("queued", "started", *FINAL_REASONS)


class LogLine(TypedDict):
    """One log line handed to ``Ledger.logs_many``: the keywords of ``Ledger.log``."""

    step_id: str | None
    level: str
    message: str
    time: str


@dataclass
class StepRecord:
    """One step run: ``key`` (such as ``z-1``) names this run of step ``step_id``."""

    run_id: str
    key: str
    step_id: str
    seq: int
    started_at: str
    finished_at: str | None
    reason: str | None
    duration_ms: float | None
    error: dict[str, Any] | None
    mem: dict[str, Any] | None
    input_ref: str | None
    input_withheld: str | None
    output_ref: str | None
    output_withheld: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field (its values shared with the record, not copied:
        a list of runs is turned into JSON on every request of a runs page)."""
        return dict(vars(self))


@dataclass
class RunRecord:
    """One run; ``steps`` is filled (in order) by ``Ledger.run`` and empty in lists."""

    run_id: str
    plan_id: str | None
    workflow: str | None
    engine_id: str | None
    attempt: int
    status: str
    submitted_at: str
    started_at: str | None
    finished_at: str | None
    duration_ms: float | None
    error: dict[str, Any] | None
    input_ref: str | None
    input_withheld: str | None
    state_ref: str | None
    state_withheld: str | None
    steps: list[StepRecord] = field(default_factory=list)

    @property
    def reason(self) -> str | None:
        """The final reason, or ``None`` while the run is queued or started."""
        return self.status if self.status in FINAL_REASONS else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field, ``reason`` included (values shared, as above)."""
        steps = [step.to_dict() for step in self.steps]
        return {**vars(self), "steps": steps, "reason": self.reason}


@dataclass
class LogRecord:
    """One log line of a run; ``seq`` counts from 1 in the order the lines were written."""

    run_id: str
    seq: int
    time: str
    level: str
    step_id: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field (its values shared with the record, not copied:
        a list of runs is turned into JSON on every request of a runs page)."""
        return dict(vars(self))
