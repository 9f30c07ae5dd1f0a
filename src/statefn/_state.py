"""State: assembly for a step, JSON-safety, copies and size.

State is a JSON-serialisable dict. Copies are made with orjson (encode then decode, with the
garbage collector paused: decoding makes many containers at once and would otherwise set
off full collections). A copy is made only where two parties would share a state: the
input given to ``run``, fan-out to several next steps, event payloads and retries. A
state handed from one step to its single next step moves without a copy, since nothing
else holds it.

``seal`` makes a step's output JSON-safe in place and measures it. Its fast path is one
orjson encode (which also rejects sets, bytes, objects, non-string keys, cycles and
subclasses of the built-in types) and one walk that accepts only exact JSON types;
anything else falls to a slower walk that converts tuples and dates and reports the path
of any value JSON cannot hold.

What leaves ``seal`` or ``copy_state`` holds exact built-in types only: a subclass of
``dict``, ``list``, ``str``, ``int``, ``float`` or a date type, which job code may define,
is replaced by the built-in value it stands for, read with the built-in type's own
methods. The runtime then never calls a method job code defined on what it hands on.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any, cast

import orjson

from ._errors import InputError, JobRuntimeError

__all__ = [
    "MAX_INPUT_DEPTH",
    "State",
    "assemble",
    "copy_state",
    "decode",
    "dumps",
    "encode",
    "nesting_depth",
    "seal",
]

State = dict[str, Any]
_isfinite = math.isfinite
# Decoded documents this large go straight to the collector's oldest generation (``decode``).
PROMOTED_BYTES = 1024 * 1024
# How many levels of arrays and objects an input state from outside (a file, a request) may
# nest. JSON parses to 1024 levels, but orjson, which encodes a state wherever it goes,
# writes 254 at most, and the state goes down 1 more in the engine's frame to a worker and 2
# in a distributed run's message: a deeper state could be neither run nor written back.
MAX_INPUT_DEPTH = 252


class _NotPlainJson(Exception):
    """The fast path met a value it does not take as it is."""


def _refuse(value: Any) -> Any:
    raise _NotPlainJson


_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def encode(value: Any) -> bytes:
    """JSON bytes of a plain JSON value (raises ``_NotPlainJson`` or ``TypeError`` otherwise)."""
    return orjson.dumps(value, default=_refuse, option=_OPTIONS)


def decode(data: bytes) -> Any:
    """Decode JSON bytes with the garbage collector paused.

    A large document (``PROMOTED_BYTES`` or more) is also moved, with every other tracked
    object, to the collector's oldest generation. Left in the youngest, its containers
    (1.4 million for the 18 MB benchmark state) would be walked by the next collection and
    again by the middle generation's: about 60 and 170 ms after every decode, while the
    document is acyclic and freed by reference counting alone. The move is two list
    splices (``gc.freeze`` then ``gc.unfreeze``): objects frozen before it are unfrozen
    with it, and garbage cycles made before it wait for the next full collection."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        value = orjson.loads(data)
        if len(data) >= PROMOTED_BYTES:
            gc.freeze()
            gc.unfreeze()
        return value
    finally:
        if enabled:
            gc.enable()


def _plain(value: Any) -> bool:
    """Whether ``value`` holds exact JSON types only (dict, list, str, int, bool, float, None),
    finite floats. Cycles must have been ruled out (orjson does, by encoding first)."""
    kind = type(value)
    if kind is dict:
        items = value.values()
    elif kind is list:
        items = value
    else:
        return (
            kind is str
            or kind is int
            or kind is bool
            or value is None
            or (kind is float and _isfinite(value))
        )
    for item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if not _isfinite(item):
                return False
        elif not _plain(item):
            return False
    return True


def _describe(value: Any) -> str:
    if isinstance(value, float):
        return f"{value!r}, which JSON cannot hold"
    if isinstance(value, set | frozenset):
        return "a set, which JSON cannot hold (use a list)"
    if isinstance(value, bytes | bytearray):
        return "bytes, which JSON cannot hold (decode them or use base64)"
    if callable(value):
        return "a function, which JSON cannot hold"
    return f"a {type(value).__name__}, which JSON cannot hold"


def _unsafe(path: str, problem: str) -> JobRuntimeError:
    return JobRuntimeError(
        f"TypeError: {path} is {problem}", subtype="TypeError", details={"path": path}
    )


def _scalar(value: Any) -> Any:
    """The exact built-in value of a string, number or date (of a subclass too, read with
    the built-in type's methods, not the subclass's); ``_NotPlainJson`` for anything else."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, datetime):
        return datetime.isoformat(value)
    if isinstance(value, date):
        return date.isoformat(value)
    if isinstance(value, time):
        return time.isoformat(value)
    raise _NotPlainJson


def _convert(value: Any, path: str, ancestors: set[int], copy: bool) -> Any:
    """The JSON-safe form of ``value``: tuples made lists, dates made ISO strings,
    subclasses made their built-in types; raises with the path of a value JSON cannot
    hold. Exact lists and dicts are converted in place, or into new containers when
    ``copy`` is set."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if not isinstance(value, dict | list | tuple):
        try:
            value = _scalar(value)
        except _NotPlainJson:
            raise _unsafe(path, _describe(value)) from None
        if type(value) is float and not _isfinite(value):
            raise _unsafe(path, _describe(value))
        return value
    if id(value) in ancestors:
        raise _unsafe(path, "a circular reference, which JSON cannot hold")
    ancestors.add(id(value))
    try:
        if isinstance(value, dict):
            items = list(dict.items(value))
            in_place = not copy and kind is dict and all(type(key) is str for key, _ in items)
            target: dict[str, Any] = value if in_place else {}
            for key, item in items:
                if not isinstance(key, str):
                    raise _unsafe(
                        path, f"an object with the non-string key {key!r}, which JSON cannot hold"
                    )
                key = str.__str__(key)
                target[key] = _convert(item, f"{path}.{key}", ancestors, copy)
            return target
        elements = cast(list[Any], value) if not copy and kind is list else [*value]
        for index, item in enumerate(elements):
            elements[index] = _convert(item, f"{path}[{index}]", ancestors, copy)
        return elements
    finally:
        ancestors.discard(id(value))


def nesting_depth(value: Any) -> int:
    """How many levels of arrays and objects ``value`` nests (0 for a string or number)."""
    depth = 0
    level = [value] if isinstance(value, dict | list) else []
    while level:
        depth += 1
        level = [
            child
            for container in level
            for child in (container.values() if isinstance(container, dict) else container)
            if isinstance(child, dict | list)
        ]
    return depth


def seal(state: State) -> bytes:
    """Make ``state`` JSON-safe in place and return its JSON encoding.

    Raises ``JobRuntimeError`` (subtype TypeError) naming the path of a value JSON cannot
    hold.
    """
    try:
        encoded = encode(state)
        if _plain(state):
            return encoded
    except (_NotPlainJson, TypeError, RecursionError):
        pass
    try:
        converted = _convert(state, "state", set(), copy=False)
    except RecursionError:
        raise _unsafe("state", "nested too deeply to be JSON") from None
    if converted is not state:
        # Keys of a job's string class: the dict was rebuilt, ``state`` stays the one given.
        state.clear()
        state.update(converted)
    return dumps(state)


def dumps(value: Any) -> bytes:
    """JSON bytes of a JSON-safe value; orjson stops at 254 levels of nesting, json does not."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def copy_state(state: Any, what: str = "state") -> Any:
    """A deep copy of a JSON value, converting tuples and dates as ``seal`` does.

    Raises ``InputError`` naming the path of a value JSON cannot hold."""
    try:
        return decode(encode(state))
    except (_NotPlainJson, TypeError, RecursionError):
        pass
    try:
        return _convert(state, what, set(), copy=True)
    except RecursionError:
        raise InputError(f"{what} is nested too deeply to be JSON") from None
    except JobRuntimeError as error:
        raise InputError(error.message.removeprefix("TypeError: "), details=error.details) from None


def assemble(
    input_state: State,
    default: State | None,
    configuration: dict[str, Any] | None,
    credentials: dict[str, Any] | None,
    fresh: Callable[[Any], Any],
) -> State:
    """The state a step starts from (contract section 2).

    ``input_state`` is owned by the step; ``default``, ``configuration`` and
    ``credentials`` come from the plan and are copied with ``fresh`` before use.
    """
    default = fresh(default) if default else {}
    state = {**default, **input_state}
    default_data = default.get("data")
    if "data" in input_state:
        data = input_state["data"]
        if isinstance(data, dict) and isinstance(default_data, dict):
            state["data"] = {**default_data, **data}
    else:
        state["data"] = default_data if default_data is not None else {}
    merged: dict[str, Any] = fresh(credentials) if credentials else {}
    input_configuration = input_state.get("configuration")
    if isinstance(input_configuration, dict):
        merged.update(input_configuration)
    if configuration:
        merged.update(fresh(configuration))
    state["configuration"] = merged
    return state
