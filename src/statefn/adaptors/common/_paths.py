"""Reading values out of state by JSONPath (RFC 9535): ``source``, ``source_value``,
``data_path``, ``data_value``, ``last_reference_value``, ``merge``, ``join``.

A path may leave out the leading ``$`` (``"data.items[*]"`` means ``"$.data.items[*]"``),
as OpenFn's paths may.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from statefn.adaptor import State, adaptor_error, resolve

__all__ = [
    "compiled_path",
    "data_path",
    "data_value",
    "join",
    "last_reference_value",
    "merge",
    "query_all",
    "query_first",
    "source",
    "source_value",
]

_LEADING_ROOT = r"^[$.]*"


@functools.lru_cache(maxsize=512)
def compiled_path(path: str) -> Any:
    """The compiled query for ``path``; an ``AdaptorError`` naming the problem if it is invalid."""
    # Imported here: jsonpath_rfc9535 takes ~25 ms to import, which every job would pay.
    import jsonpath_rfc9535

    text = path if path.startswith("$") else _under("$", path)
    try:
        return jsonpath_rfc9535.compile(text)
    except jsonpath_rfc9535.JSONPathError as error:
        raise adaptor_error(
            f"Invalid JSONPath {path!r}: {error}",
            fix="JSONPath follows RFC 9535, e.g. $.data.items[*].id or $.data.items[?@.active]",
            path=path,
        ) from None


def _under(root: str, path: str) -> str:
    # "x.y", ".x.y" and "$.x.y" all mean the same place below root; "[0].x" is joined as is.
    rest = re.sub(_LEADING_ROOT, "", path)
    if not rest:
        return root
    return root + rest if rest.startswith("[") else f"{root}.{rest}"


def query_all(path: str, value: Any) -> list[Any]:
    """Every value ``path`` matches in ``value``, in document order."""
    return list(compiled_path(path).find(value).values())


def query_first(path: str, value: Any) -> Any:
    """The first value ``path`` matches in ``value``, or None."""
    node = compiled_path(path).find_one(value)
    return None if node is None else node.value


def source(path: str) -> Callable[[State], list[Any]]:
    """A function of state: every value the JSONPath ``path`` matches, as a list.

    Example: ``source("$.data.books[*].title")`` gives ``["Moby Dick", ...]``
    """
    compiled_path(path)
    return functools.partial(query_all, path)


def source_value(path: str) -> Callable[[State], Any]:
    """A function of state: the first value the JSONPath ``path`` matches (None if none).

    Example: ``source_value("$.data.store.bicycle.color")`` gives ``"red"``
    """
    compiled_path(path)
    return functools.partial(query_first, path)


def data_path(path: str) -> str:
    """The JSONPath of ``path`` below ``data``: ``"$.data." + path``.

    A leading ``$`` or ``.`` on ``path`` is dropped; an index is joined without a dot.

    Example: ``data_path("patients[0].id")`` is ``"$.data.patients[0].id"``
    """
    return _under("$.data", path)


def data_value(path: str) -> Callable[[State], Any]:
    """A function of state: the first value ``path`` matches below ``data``.

    Example: ``data_value("store.bicycle.color")`` gives ``state["data"]["store"]["bicycle"]["color"]``
    """
    return source_value(data_path(path))


def last_reference_value(path: str) -> Callable[[State], Any]:
    """A function of state: the first match of ``path`` in the last item of ``references``
    (the ``data`` of the operation before the last one that composed state).

    Example: ``last_reference_value("id")`` after ``get("/a")`` then ``get("/b")`` gives ``/a``'s id
    """
    return source_value(_under("$.references[-1]", path))


def merge(path: str, fields: Any) -> Callable[[State], list[dict[str, Any]]]:
    """A function of state: each item ``path`` matches, merged with ``fields`` (lazy values
    resolved once).

    Example: ``merge("$.data.books[*]", fields(field("shop", source_value("$.shop"))))``
    """
    compiled_path(path)

    def merged(state: State) -> list[dict[str, Any]]:
        extra = resolve(fields, state)
        return [{**item, **extra} for item in query_all(path, state)]

    return merged


def join(target_path: str, source_path: str, target_key: str) -> Callable[[State], list[Any]]:
    """A function of state: each item ``target_path`` matches, with ``target_key`` set to the
    first match of ``source_path`` (an item's own ``target_key`` wins).

    Example: ``join("$.data.books[*]", "$.data.bicycle.color", "color")``
    """
    compiled_path(target_path)
    compiled_path(source_path)

    def joined(state: State) -> list[Any]:
        value = query_first(source_path, state)
        return [{target_key: value, **item} for item in query_all(target_path, state)]

    return joined
