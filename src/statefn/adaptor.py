"""The adaptor kit: what every adaptor needs.

An adaptor is a Python package whose public operations and helpers are listed in its
``__all__``. Its operations are made by *operation factories*: functions that take the
job's arguments and return an operation, a function ``state -> state`` (sync or async).

    from statefn.adaptor import operation, resolve, compose_next_state

    @operation
    def set_total(path):
        def run(state):
            items = resolve(path, state)
            return compose_next_state(state, {"total": sum(items)})
        return run

Arguments may be *lazy*: any callable of state (``lambda s: s["data"]["id"]`` or the job
language's ``S.data.id``); ``resolve`` turns them into values, inside lists and dicts too.

Also here: ``adaptor_error`` (an ``AdaptorError`` with JSON-safe details, to raise),
``log_line`` (a line in the job's log), ``run_resource`` (an object such as an HTTP
client shared by one run's operations and closed when it ends), ``current_run`` and
``idempotency_key`` (stable across the attempts of a step run).
The guide is ``docs/adaptors.md``.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, ParamSpec, TypeVar

from ._context import current_run, idempotency_key, run_resource
from ._errors import AdaptorError

__all__ = [
    "AdaptorError",
    "LogLevel",
    "Operation",
    "State",
    "adaptor_error",
    "compose_next_state",
    "current_run",
    "idempotency_key",
    "is_operation_factory",
    "json_safe",
    "log_line",
    "operation",
    "resolve",
    "run_resource",
    "step_console",
]

State = dict[str, Any]
Operation = Callable[[State], Any]
P = ParamSpec("P")
R = TypeVar("R")

LogLevel = Literal["debug", "info", "warn", "error"]

_FACTORY_FLAG = "statefn_operation_factory"

step_console: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "statefn_step_console", default=None
)
"""The running step's console (a ``JobConsole``), set by the runtime while a step runs."""

_fallback_logger = logging.getLogger("statefn.job")
_LOGGING_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


def operation(factory: Callable[P, R]) -> Callable[P, R]:
    """Mark ``factory`` as an operation factory: calling it returns an operation.

    Job code may use a factory as the outermost decorator of a top-level ``def``; the
    decorated function then becomes an operation at that place in the job.
    """

    @functools.wraps(factory)
    def make(*args: P.args, **kwargs: P.kwargs) -> R:
        return factory(*args, **kwargs)

    setattr(make, _FACTORY_FLAG, True)
    return make


def is_operation_factory(value: Any) -> bool:
    """Whether ``value`` was made with ``@operation``."""
    return callable(value) and getattr(value, _FACTORY_FLAG, False) is True


def resolve(value: Any, state: State) -> Any:
    """Resolve lazy references in ``value`` against ``state``.

    A callable is called with the state; lists, tuples and dicts are resolved item by item
    (a new container is returned); anything else is returned as it is.
    """
    if callable(value):
        return value(state)
    if isinstance(value, dict):
        return {key: resolve(item, state) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(item, state) for item in value]
    return value


def compose_next_state(state: State, data: Any) -> State:
    """A new state whose ``data`` is ``data``, the previous ``data`` appended to ``references``.

    The state given is not changed. Operations that fetch or produce a result use it, so
    that ``last_reference_value`` can reach what came before.

    Example: ``compose_next_state({"data": 1}, 2)`` is ``{"data": 2, "references": [1]}``
    """
    references = list(state.get("references") or [])
    if "data" in state:
        references.append(state["data"])
    return {**state, "data": data, "references": references}


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that JSON can hold, for error details and log lines.

    Dicts (keys made strings), lists and tuples are copied item by item; strings, ints,
    finite floats, booleans and None are kept; bytes are decoded as UTF-8 (bad bytes
    replaced); anything else becomes its ``repr``. A container met again inside itself
    becomes ``"[Circular]"``.

    Example: ``json_safe({"at": b"ok", 1: {3}})`` is ``{"at": "ok", "1": "{3}"}``
    """
    return _json_safe(value, set())


def _json_safe(value: Any, seen: set[int]) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if not isinstance(value, Mapping | list | tuple):
        return repr(value)
    if id(value) in seen:
        return "[Circular]"
    seen.add(id(value))
    try:
        if isinstance(value, Mapping):
            return {str(key): _json_safe(item, seen) for key, item in value.items()}
        return [_json_safe(item, seen) for item in value]
    finally:
        seen.discard(id(value))


def adaptor_error(message: str, *, fix: str | None = None, **details: Any) -> AdaptorError:
    """An ``AdaptorError`` whose ``details`` are ``details`` made JSON-safe; raise it.

    The runtime records it in ``state["errors"]`` (severity ``fail``) with the step id.

    Example: ``raise adaptor_error("Not found", fix="Check the id", status=404, url=url)``
    """
    return AdaptorError(message, details=json_safe(details) or None, fix=fix)


def log_line(level: LogLevel, message: str, values: tuple[object, ...] = ()) -> None:
    """Write ``message`` to the running step's console, as job code's ``print`` does.

    The line is masked and reaches the run's job logger and ``log`` event. Outside a step
    it goes to the ``statefn.job`` Python logger. ``values``, when given, are what the
    message was made of (for loggers that shape objects themselves, as the command line's
    ``--sanitize`` does).

    Example: ``log_line("info", f"fetched {len(items)} items")``
    """
    console = step_console.get()
    if console is None:
        _fallback_logger.log(_LOGGING_LEVELS[level], message)
    else:
        console.log(level, message, values)
