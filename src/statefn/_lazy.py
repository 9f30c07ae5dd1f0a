"""Lazy references to state: the job language's ``S``.

``S.data.items[0].id`` is a function of state, the same as
``lambda state: state["data"]["items"][0]["id"]``: an attribute is a key lookup and
``[i]`` an index or key lookup. Adaptors call lazy values with the state, so ``S`` paths
can be passed wherever an adaptor takes a lazy argument (``get(S.data.url)``) and used as
functions of state in job code (``S.data.id(state)``).

Keys that begin with ``_`` or clash with the job language's rules are reached by
subscript: ``S.data["_id"]``.
"""

from __future__ import annotations

import keyword
from typing import Any, NoReturn

__all__ = ["S", "StatePath"]


class StatePath:
    """A path into state, built by attribute and subscript access, resolved by calling it."""

    __slots__ = ("_keys",)

    _keys: tuple[Any, ...]

    def __init__(self, keys: tuple[Any, ...] = ()) -> None:
        object.__setattr__(self, "_keys", keys)

    def __getattr__(self, name: str) -> StatePath:
        # Names beginning with "_" are Python's own protocols (copy, pickle, IPython probes):
        # answering them with a path would make ``S`` look like something it is not.
        if name.startswith("_"):
            raise AttributeError(name)
        return StatePath((*self._keys, name))

    def __getitem__(self, key: Any) -> StatePath:
        return StatePath((*self._keys, key))

    def __call__(self, state: Any) -> Any:
        value = state
        for key in self._keys:
            value = value[key]
        return value

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"{self!r} is read-only")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{self!r} is read-only")

    def __reduce__(self) -> tuple[type[StatePath], tuple[tuple[Any, ...]]]:
        return (StatePath, (self._keys,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StatePath) and other._keys == self._keys

    def __hash__(self) -> int:
        return hash(("StatePath", self._keys))

    def __repr__(self) -> str:
        parts = ["S"]
        for key in self._keys:
            if _is_attribute_name(key):
                parts.append(f".{key}")
            else:
                parts.append(f"[{key!r}]")
        return "".join(parts)


def _is_attribute_name(key: Any) -> bool:
    return (
        isinstance(key, str)
        and key.isidentifier()
        and not key.startswith("_")
        and not keyword.iskeyword(key)
    )


S = StatePath()
