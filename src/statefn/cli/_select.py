"""Finding the step a user means by ``--start``, ``--end`` or ``--only``.

An exact id wins; otherwise the query must be a substring (case-insensitive) of exactly one
step's id or name. No match, or several, is an error that lists the candidates (and, for no
match, the id most like the query).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._exits import CliError

__all__ = ["find_step"]


def find_step(steps: Sequence[dict[str, Any]], query: str, flag: str) -> str:
    """The id of the one step ``query`` names, for the option ``flag``."""
    if any(step["id"] == query for step in steps):
        return query
    needle = query.casefold()
    matches = [step for step in steps if needle in _haystack(step)]
    if len(matches) == 1:
        found: str = matches[0]["id"]
        return found
    if matches:
        raise CliError(f"{flag} {query!r} matches several steps:\n{_listing(matches)}")
    from statefn._suggest import closest

    match = closest(query, [step["id"] for step in steps])
    hint = f" Did you mean {match!r}?" if match else ""
    raise CliError(f"{flag} {query!r} matches no step.{hint} The steps are:\n{_listing(steps)}")


def _haystack(step: dict[str, Any]) -> str:
    name = step.get("name")
    return f"{step['id']}\n{name if isinstance(name, str) else ''}".casefold()


def _listing(steps: Sequence[dict[str, Any]]) -> str:
    lines = []
    for step in steps:
        name = step.get("name")
        lines.append(f"  {step['id']}" + (f" ({name})" if isinstance(name, str) and name else ""))
    return "\n".join(lines)
