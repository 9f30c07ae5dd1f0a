"""Operations that write to the job's log: ``log`` and ``debug``."""

from __future__ import annotations

from typing import Any

from statefn.adaptor import LogLevel, Operation, State, log_line, operation, resolve

from ._values import text_of

__all__ = ["debug", "log"]


def _logger(level: LogLevel, args: tuple[Any, ...]) -> Operation:
    def run(state: State) -> State:
        values = resolve(list(args), state)
        log_line(level, " ".join(text_of(value) for value in values), tuple(values))
        return state

    return run


@operation
def log(*args: Any) -> Operation:
    """Log ``args`` at ``info``, space-separated (lazy ones resolved; non-strings as JSON).

    The line goes to the job's log, like ``print`` in job code; state is unchanged.

    Example: ``log("patients:", S.data.patients)``
    """
    return _logger("info", args)


@operation
def debug(*args: Any) -> Operation:
    """Log ``args`` at ``debug`` level, like ``log``; state is unchanged.

    Example: ``debug("raw response:", S.data)``
    """
    return _logger("debug", args)
