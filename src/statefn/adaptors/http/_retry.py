"""When and how long to wait before sending a request again.

A request is retried after a network error, a ``429 Too Many Requests`` or a ``5xx``
status. The wait doubles from ``backoff_ms`` (by ``factor``) unless the server says how
long to wait with ``Retry-After``, in seconds or as an HTTP date; a server that asks for
more than ``max_wait_ms`` is not waited for: the last response stands.
"""

from __future__ import annotations

import datetime
import email.utils
from dataclasses import dataclass
from typing import Any

from statefn.adaptor import AdaptorError

__all__ = ["RetryPolicy", "is_retryable_status", "parse_retry_after"]

_RETRY_FIX = (
    "Give retries as a count (retries=3) or as a dict such as "
    '{"count": 3, "backoff_ms": 1000, "factor": 2, "max_wait_ms": 60000}.'
)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry and how long to wait between attempts."""

    count: int = 0
    backoff_ms: float = 1000
    factor: float = 2
    max_wait_ms: float = 60_000

    @classmethod
    def from_option(cls, value: Any) -> RetryPolicy:
        """Read the ``retries`` option: ``None``, a count, or a dict of the fields."""
        if value is None:
            return cls()
        if isinstance(value, bool):
            raise AdaptorError(f"retries must be a count or a dict, not {value!r}", fix=_RETRY_FIX)
        if isinstance(value, int):
            return cls(count=int(_non_negative("count", value)))
        if not isinstance(value, dict):
            raise AdaptorError(
                f"retries must be a count or a dict, not {type(value).__name__}", fix=_RETRY_FIX
            )
        unknown = sorted(set(value) - {"count", "backoff_ms", "factor", "max_wait_ms"})
        if unknown:
            raise AdaptorError(f"Unknown retries keys: {', '.join(unknown)}", fix=_RETRY_FIX)
        defaults = cls()
        return cls(
            count=int(_non_negative("count", value.get("count", defaults.count))),
            backoff_ms=_non_negative("backoff_ms", value.get("backoff_ms", defaults.backoff_ms)),
            factor=_non_negative("factor", value.get("factor", defaults.factor)),
            max_wait_ms=_non_negative(
                "max_wait_ms", value.get("max_wait_ms", defaults.max_wait_ms)
            ),
        )

    def wait_seconds(self, attempt: int, retry_after: str | None = None) -> float | None:
        """Seconds to wait after failed ``attempt`` (1-based), or None to stop retrying."""
        if attempt > self.count:
            return None
        asked = parse_retry_after(retry_after) if retry_after is not None else None
        wait_ms = (
            asked * 1000 if asked is not None else self.backoff_ms * self.factor ** (attempt - 1)
        )
        if asked is not None and wait_ms > self.max_wait_ms:
            return None
        return min(wait_ms, self.max_wait_ms) / 1000


def _non_negative(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise AdaptorError(f"retries {key} must be a number >= 0, not {value!r}", fix=_RETRY_FIX)
    return value


def is_retryable_status(status: int) -> bool:
    """Whether a response with this status is worth sending again."""
    return status == 429 or 500 <= status <= 599


def parse_retry_after(value: str, now: datetime.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or HTTP date); None if unreadable."""
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        # HTTP dates are always GMT; a missing zone means the sender left it implicit.
        when = when.replace(tzinfo=datetime.UTC)
    current = now or datetime.datetime.now(datetime.UTC)
    return max(0.0, (when - current).total_seconds())
