"""Operations that run other operations or callbacks: ``fn``, ``fn_if``, ``combine``, ``each``,
``map_``, ``as_``.

They stay synchronous while everything they run is, and become a coroutine from the
first awaitable on: a blocking job keeps running in one thread, an async one on the loop.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from statefn.adaptor import Operation, State, adaptor_error, operation, resolve

from ._paths import compiled_path, query_all

__all__ = ["as_", "combine", "each", "fn", "fn_if", "map_", "then", "thread"]

Step = Callable[[Any], Any]
OperationOrDecorator = Operation | Callable[[Operation], Operation]


def thread(value: Any, steps: Iterable[Step]) -> Any:
    """Pass ``value`` through ``steps`` in order: the result, or a coroutine of it once a step
    returns an awaitable."""
    pending = iter(steps)
    for step in pending:
        value = step(value)
        if inspect.isawaitable(value):
            return _thread_async(value, pending)
    return value


async def _thread_async(first: Any, pending: Iterator[Step]) -> Any:
    value = await first
    for step in pending:
        value = step(value)
        if inspect.isawaitable(value):
            value = await value
    return value


def then(value: Any, func: Step) -> Any:
    """``func(value)``, awaiting ``value`` first when it is awaitable."""
    if inspect.isawaitable(value):
        return _then_async(value, func)
    return func(value)


async def _then_async(value: Any, func: Step) -> Any:
    result = func(await value)
    if inspect.isawaitable(result):
        result = await result
    return result


def _expect_state(value: Any, where: str) -> State:
    if isinstance(value, dict):
        return value
    raise adaptor_error(
        f"{where} returned {type(value).__name__}, not a state dict",
        fix="Make every operation return the state (a dict), e.g. {**state, 'data': ...}",
    )


def _decorator_or(
    make: Callable[[Operation], Operation], op: Operation | None
) -> OperationOrDecorator:
    # With the operation left out, the factory is being used as a decorator:
    # ``@each("$.data[*]")`` above a ``def`` makes that function the operation.
    return make if op is None else make(op)


@operation
def fn(func: Callable[[State], Any]) -> Operation:
    """Run ``func(state)`` as an operation; what it returns (or awaits to) is the next state.

    Also a decorator: ``@fn`` above a top-level ``def`` makes it an operation in place.

    Example: ``fn(lambda state: {**state, "data": {"ok": True}})``
    """

    def run(state: State) -> Any:
        return func(state)

    return run


@operation
def fn_if(condition: Any, op: Operation | None = None) -> OperationOrDecorator:
    """Run ``op`` only when ``condition`` (a value or a function of state) is truthy.

    Without ``op`` it is a decorator: ``@fn_if(S.data.ok)`` above a ``def``.

    Example: ``fn_if(lambda state: state["data"]["ok"], log("ok"))``
    """

    def make(op: Operation) -> Operation:
        def run(state: State) -> Any:
            return op(state) if resolve(condition, state) else state

        return run

    return _decorator_or(make, op)


@operation
def combine(*operations: Operation) -> Operation:
    """Run ``operations`` one after the other, each on the state the previous one returned.

    Example: ``combine(fn(step_one), log("done"))``
    """

    def run(state: State) -> Any:
        steps = (functools.partial(_run_nth, op, n) for n, op in enumerate(operations))
        return thread(state, steps)

    return run


def _run_nth(op: Operation, n: int, state: Any) -> Any:
    if n > 0:
        state = _expect_state(state, f"combine: operation {n - 1}")
    return op({**state})


@operation
def each(source: Any, op: Operation | None = None) -> OperationOrDecorator:
    """Run ``op`` once per item of ``source``, on the state with ``data`` = the item and
    ``index`` = its position.

    ``source`` is a JSONPath string (each match is an item), a list, or a function of state
    returning a list. Items run in order and state threads through them: the state the
    last item left is returned (with that item still in ``data``). Without ``op`` it is a
    decorator: ``@each("$.data.items[*]")`` above a ``def``.

    Example: ``each("$.data.patients[*]", post("/patients", S.data))``
    """
    if isinstance(source, str):
        compiled_path(source)

    def make(op: Operation) -> Operation:
        def run(state: State) -> Any:
            items = items_of(source, state, "each")
            steps = (functools.partial(_visit, op, item, n) for n, item in enumerate(items))
            return thread(state, steps)

        return run

    return _decorator_or(make, op)


def _visit(op: Operation, item: Any, index: int, state: Any) -> Any:
    if index > 0:
        state = _expect_state(state, f"each: the operation for item {index - 1}")
    return op({**state, "data": item, "index": index})


def items_of(source: Any, state: State, who: str) -> list[Any]:
    """The items ``source`` names in ``state``: JSONPath matches, a list, or a function's list."""
    if isinstance(source, str):
        return query_all(source, state)
    items = resolve(source, state)
    if items is None:
        return []
    if isinstance(items, list | tuple):
        return list(items)
    raise adaptor_error(
        f"{who}: the source gave {type(items).__name__}, not a list",
        fix='Point the source at a list, e.g. "$.data.items[*]" or lambda state: state["data"]',
    )


@operation
def map_(source: Any, callback: Callable[[Any, int, State], Any]) -> Operation:
    """Set ``data`` to ``callback(item, index, state)`` for each item of ``source``, in order.

    ``source`` is as for ``each``; ``callback`` may be async. ``state`` is the state
    ``map_`` was given (it is not threaded). Named ``map_`` so Python's ``map`` stays usable.

    Example: ``map_("$.data.books[*]", lambda book, i, state: {"id": i, "title": book["title"]})``
    """
    if isinstance(source, str):
        compiled_path(source)

    def run(state: State) -> Any:
        results: list[Any] = []

        def collect(item: Any, index: int, _: Any) -> Any:
            return then(callback(item, index, state), results.append)

        items = items_of(source, state, "map_")
        steps = (functools.partial(collect, item, n) for n, item in enumerate(items))
        return then(thread(None, steps), lambda _: {**state, "data": results})

    return run


@operation
def as_(key: Any, op: Operation | None = None) -> OperationOrDecorator:
    """Run ``op`` and put the ``data`` it produced at ``state[key]``, keeping ``data`` as it was.

    Other keys the operation set are kept. ``key`` may be lazy. Without ``op`` it is a
    decorator: ``@as_("patients")``.

    Example: ``as_("grouped", group(S.data, "city"))``
    """

    def make(op: Operation) -> Operation:
        def run(state: State) -> Any:
            name = resolve(key, state)
            return then(op(state), functools.partial(_keep_data, state, name))

        return run

    return _decorator_or(make, op)


def _keep_data(before: State, name: Any, result: Any) -> State:
    rest = dict(_expect_state(result, f"as_({name!r}): the operation"))
    produced = rest.pop("data", None)
    after = {**before, **rest, name: produced}
    if "data" in before:
        after["data"] = before["data"]
    return after
