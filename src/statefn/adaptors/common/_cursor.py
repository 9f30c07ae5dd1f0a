"""``cursor``: remember where a sync got to (a date, a page) in state."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from statefn.adaptor import Operation, State, log_line, operation, resolve, run_resource

from ._values import text_of

__all__ = ["cursor"]

_AGO = r"^\s*(\d+)\s+(hour|day)s?\s+ago\s*$"


def _run_start() -> datetime:
    # One start time per run: run_resource keeps it for the run (and makes a new one outside).
    return run_resource("common.cursor.start", lambda: datetime.now(UTC))


def _local_midnight(days_back: int) -> datetime:
    # A naive local time made aware by astimezone() gets that day's own UTC offset (DST-safe).
    return datetime.combine(date.today() - timedelta(days=days_back), time()).astimezone()


def _parse_natural_date(text: str) -> datetime | None:
    """The moment ``text`` names (``now``, ``start``, ``today``, ``N hours ago``...), or None."""
    word = text.strip().lower()
    if word in ("now", "end"):
        return datetime.now(UTC)
    if word == "start":
        return _run_start()
    if word == "today":
        return _local_midnight(0)
    if word == "yesterday":
        return _local_midnight(1)
    match = re.match(_AGO, word)
    if match is None:
        return None
    count = int(match[1])
    if match[2] == "hour":
        return datetime.now(UTC) - timedelta(hours=count)
    return _local_midnight(count)


def _iso(moment: datetime) -> str:
    # As JavaScript's toISOString(): UTC, milliseconds, "Z" (what OpenFn jobs exchange).
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@operation
def cursor(
    value: Any = None,
    key: str = "cursor",
    default: Any = None,
    *,
    formatter: Callable[[Any], Any] | None = None,
) -> Operation:
    """Set ``state[key]`` to ``value`` (or ``default`` when ``value`` is None), and log it.

    Strings naming a moment become ISO 8601 UTC timestamps: ``"now"``, ``"start"`` (when
    the run began), ``"today"`` and ``"yesterday"`` (local midnight), ``"N hours ago"``,
    ``"N days ago"`` (local midnight N days back). Other values are kept as they are.
    ``value`` and ``default`` may be lazy; ``formatter``, if given, turns the value (a
    ``datetime`` for a named moment) into what is stored.

    Example: ``cursor(S.cursor, default="yesterday")``; ``cursor(2, key="page")``
    """

    def run(state: State) -> State:
        chosen = resolve(value, state)
        if chosen is None:
            chosen = resolve(default, state)
        moment = _parse_natural_date(chosen) if isinstance(chosen, str) else None
        if moment is not None:
            stored = formatter(moment) if formatter else _iso(moment)
            log_line("info", f'Setting {key} "{chosen}" to: {stored}')
        else:
            stored = formatter(chosen) if formatter else chosen
            log_line("info", f"Setting {key} to: {text_of(stored)}")
        return {**state, key: stored}

    return run
