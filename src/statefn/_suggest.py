"""Suggestions for misspelt names: the "did you mean" of error messages.

Used wherever a user's word must match one of a known set (plan keys, step ids, adaptor
names, command-line flags and commands). ``difflib`` is imported only when a word missed.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["closest", "did_you_mean"]


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice most like ``word``, if one is alike enough to be a likely typo."""
    import difflib

    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'steps'?"`` for the closest choice, or ``""`` when none is close."""
    match = closest(word, choices)
    return f"; did you mean {match!r}?" if match else ""
