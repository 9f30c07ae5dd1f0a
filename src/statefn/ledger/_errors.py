"""The ledger's own errors: a run that cannot be found, a state that was not kept."""

from __future__ import annotations

from statefn._errors import LedgerError

__all__ = ["RunLookupError", "StateWithheldError"]


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
