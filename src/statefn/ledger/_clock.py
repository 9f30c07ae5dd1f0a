"""Times in the ledger: ISO 8601 text in UTC, always with microseconds, so text order is time
order on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["now", "utc_text"]


def utc_text(value: str | datetime) -> str:
    """``value`` (ISO 8601 text or a datetime; naive means UTC) as the ledger writes times."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def now(*, minus_s: float = 0.0) -> str:
    """The time now (or ``minus_s`` seconds ago), as the ledger writes times."""
    return (datetime.now(UTC) - timedelta(seconds=minus_s)).isoformat(timespec="microseconds")
