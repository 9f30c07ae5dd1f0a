"""The ledger's own errors: a run that cannot be found, a state that was not kept, a write
by a delivery of a run that another delivery superseded."""

from __future__ import annotations

from statefn._errors import LedgerError

__all__ = ["RunLookupError", "StaleAttemptError", "StateWithheldError"]


class RunLookupError(LedgerError):
    """No run, or more than one, matches the id or prefix asked for; ``candidates`` lists them."""

    def __init__(self, message: str, *, candidates: list[str], fix: str | None = None) -> None:
        super().__init__(message, fix=fix, details={"candidates": candidates})
        self.candidates = candidates


class StateWithheldError(LedgerError):
    """The state asked for was not stored (``withheld`` says why, e.g. ``"too large"``)."""

    def __init__(self, message: str, *, withheld: str) -> None:
        super().__init__(message, details={"withheld": withheld})
        self.withheld = withheld


class StaleAttemptError(LedgerError):
    """A write carried an attempt of the run that a later delivery has superseded."""

    def __init__(self, run_id: str, attempt: int, current: int) -> None:
        super().__init__(
            f"Run {run_id} is now on attempt {current}: attempt {attempt} may not record it",
            fix="Stop working on the run: another worker holds it",
            details={"attempt": attempt, "current": current},
        )
        self.attempt = attempt
        self.current = current
