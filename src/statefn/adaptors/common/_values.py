"""Helpers that build or reshape plain values: ``field``, ``fields``, ``chunk``, ``to_array``,
``split_keys``, ``array_to_string``, ``human_proper``, ``scrub_emojis``, and ``group``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson

from statefn.adaptor import Operation, State, adaptor_error, log_line, operation, resolve

__all__ = [
    "array_to_string",
    "chunk",
    "field",
    "fields",
    "group",
    "human_proper",
    "scrub_emojis",
    "split_keys",
    "text_of",
    "to_array",
]

# Patterns are compiled on first use (re caches them), not when the adaptor is linked.
# Pictographs, dingbats, symbols and the emoji variation selector (as OpenFn matches them).
_EMOJI = "[\ufe0f\u00a9\u00ae\u2000-\u3300\U0001f000-\U0001fbff]"
_WORD = r"\w\S*"
_KEY_PART = r"[^.\[\]]+"
_MISSING = object()


def text_of(value: Any) -> str:
    """``value`` as a reader expects it in a log line: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def field(key: str, value: Any) -> tuple[str, Any]:
    """A ``(key, value)`` pair, for ``fields``; ``value`` may be lazy.

    Example: ``field("name", data_value("patient.name"))``
    """
    return (key, value)


def fields(*pairs: tuple[str, Any]) -> dict[str, Any]:
    """A dict made of ``field`` pairs (lazy values are resolved by the operation using it).

    Example: ``fields(field("a", 1), field("b", 2))`` is ``{"a": 1, "b": 2}``
    """
    return dict(pairs)


def chunk(items: Sequence[Any], size: int) -> list[list[Any]]:
    """``items`` cut into lists of at most ``size`` items, in order.

    Example: ``chunk([1, 2, 3, 4, 5], 2)`` is ``[[1, 2], [3, 4], [5]]``
    """
    if size < 1:
        raise adaptor_error(f"chunk size must be at least 1, got {size}", size=size)
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def to_array(value: Any) -> list[Any]:
    """``value`` as a list: a list as it is, a tuple as a list, anything else wrapped.

    Example: ``to_array({"a": 1})`` is ``[{"a": 1}]``; ``to_array([1, 2])`` is ``[1, 2]``
    """
    if isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    return [value]


def split_keys(
    obj: Mapping[str, Any], keys: Iterable[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``obj`` split in two: the items whose key is not in ``keys``, and those whose key is.

    Example: ``split_keys({"a": 1, "b": 2, "c": 3}, ["b"])`` is ``({"a": 1, "c": 3}, {"b": 2})``
    """
    chosen = set(keys)
    kept = {key: value for key, value in obj.items() if key not in chosen}
    split = {key: value for key, value in obj.items() if key in chosen}
    return kept, split


def array_to_string(items: Iterable[Any], separator: str = ",") -> str:
    """The items joined by ``separator`` (strings as they are, other values as JSON).

    Example: ``array_to_string([1, 2, 3], ", ")`` is ``"1, 2, 3"``
    """
    return separator.join(text_of(item) for item in items)


def human_proper(text: Any) -> Any:
    """``text`` with ``_`` and ``-`` made spaces and each word capitalised; non-strings as they are.

    Example: ``human_proper("first_name-given")`` is ``"First Name Given"``
    """
    if not isinstance(text, str):
        return text
    spaced = re.sub(r"[_-]", " ", text)
    return re.sub(_WORD, lambda word: word[0][0].upper() + word[0][1:].lower(), spaced)


def scrub_emojis(text: Any, replacement: str | None = None) -> Any:
    """``text`` with each emoji character replaced by ``replacement`` (default ``"\\ufffd"``).

    Removing characters (``replacement=""``) can hide injected text, so it logs a warning;
    empty and non-string values are returned as they are.

    Example: ``scrub_emojis("Dove🕊️ 29")`` is ``"Dove\\ufffd\\ufffd 29"``
    """
    if not text or not isinstance(text, str):
        return text
    if replacement == "":
        log_line(
            "warn",
            "scrub_emojis: removing characters rather than replacing them may hide injected text",
        )
    return re.sub(_EMOJI, "\ufffd" if replacement is None else replacement, text)


@operation
def group(items: Any, key_path: Any, callback: Callable[[State], Any] | None = None) -> Operation:
    """Set ``data`` to ``items`` grouped by the value at ``key_path`` (dotted, ``[n]`` allowed).

    Groups are keyed by that value as text; items without it are left out. ``items`` and
    ``key_path`` may be lazy; ``callback``, if given, receives the new state and returns
    the next one.

    Example: ``group(S.data.users, "address.city")`` gives
    ``{"Paris": [...], "Oslo": [...]}`` in ``data``
    """

    def run(state: State) -> Any:
        resolved_items = resolve(items, state) or []
        parts = re.findall(_KEY_PART, str(resolve(key_path, state)))
        groups: dict[str, list[Any]] = {}
        for item in resolved_items:
            value = _dig(item, parts)
            if value is not _MISSING:
                groups.setdefault(text_of(value), []).append(item)
        next_state = {**state, "data": groups}
        return callback(next_state) if callback else next_state

    return run


def _dig(value: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value
