"""Operations that shape the flow of a job: ``fn``, ``fn_if``, ``each``, ``combine``, ``log``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jsonpath_rfc9535
import orjson

from statefn.adaptor import Operation, State, log_line, operation, resolve

__all__ = ["combine", "each", "fn", "fn_if", "log"]


async def _settle(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _text(value: Any) -> str:
    # Strings as they are, structures as JSON (what a reader of the log expects to see).
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, default=repr).decode()
    except TypeError:
        return repr(value)


@operation
def fn(func: Callable[[State], Any]) -> Operation:
    """Run ``func(state)`` as an operation; what it returns is the next state.

    Example: ``fn(lambda state: {**state, "data": {"ok": True}})``
    """

    def run(state: State) -> Any:
        return func(state)

    return run


@operation
def fn_if(condition: Any, op: Operation) -> Operation:
    """Run ``op`` only when ``condition`` (a value or a function of state) is truthy.

    Example: ``fn_if(lambda state: state["data"]["ok"], log("ok"))``
    """

    async def run(state: State) -> Any:
        if resolve(condition, state):
            return await _settle(op(state))
        return state

    return run


@operation
def combine(*operations: Operation) -> Operation:
    """Run ``operations`` one after the other, threading state through them.

    Example: ``combine(fn(step_one), fn(step_two))``
    """

    async def run(state: State) -> Any:
        for op in operations:
            state = await _settle(op(state))
        return state

    return run


@operation
def each(source: Any, op: Operation) -> Operation:
    """Run ``op`` once per item of ``source``, with ``data`` = the item and ``index`` = its place.

    ``source`` is a JSONPath string (every match is an item) or a function of state
    returning a list. Items run in order; state threads from one to the next, and the
    state the last item left is returned.

    Example: ``each("$.data.items[*]", fn(lambda s: {**s, "seen": s["data"]["id"]}))``
    """

    async def run(state: State) -> Any:
        if isinstance(source, str):
            items = jsonpath_rfc9535.find(source, state).values()
        else:
            items = list(resolve(source, state) or [])
        for index, item in enumerate(items):
            state = await _settle(op({**state, "data": item, "index": index}))
        return state

    return run


@operation
def log(*args: Any) -> Operation:
    """Log ``args`` (lazy ones resolved against state) to the job console; state is unchanged.

    Example: ``log("fetched", lambda state: len(state["data"]))``
    """

    def run(state: State) -> State:
        log_line("info", " ".join(_text(value) for value in resolve(list(args), state)))
        return state

    return run
