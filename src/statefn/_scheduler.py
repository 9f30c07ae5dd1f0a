"""How a run waits: on an asyncio event loop, or inline on the caller's thread.

The runtime is written as coroutines. A run with step workers (a timeout, or several steps
at once) and every run started with ``run_async`` run them as tasks of an asyncio event
loop (``LoopScheduler``). Any other run (the usual one: no timeout, one step at a time),
started with ``run`` or by an engine worker (``_api.run_here``), has nothing to wait for but
its own code, so its coroutines are driven to their end on the calling thread as they are
made (``InlineScheduler``), and asyncio is not even imported: a one-step command pays for
its step, not for an event loop (about 16 ms of imports), and a worker spends about 1 ms
less of CPU on a trivial run. There, an operation, resolver or event handler that is itself
asynchronous is run to its end on a private event loop, made for the first one and kept,
with what adaptors made on it (``run_resource``), until the run ends.

The walk, the steps and the event bus wait through the few means both schedulers give:
``spawn`` a coroutine, wait for the ``first_done`` of several, ``settle`` cancelled ones,
``sleep``, await ``foreign`` awaitables (what user or adaptor code returned), and ``close``.
"""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import asyncio

    from ._context import RunContext

__all__ = [
    "InlineScheduler",
    "LoopScheduler",
    "Scheduler",
    "complete",
    "end_tasks",
    "is_cancelled",
    "running_loop",
]

T = TypeVar("T")


class Scheduler(Protocol):
    """What the runtime waits through (see the module's docstring)."""

    def spawn(self, coroutine: Coroutine[Any, Any, T]) -> Any: ...

    def first_done(self, handles: Collection[Any]) -> Awaitable[set[Any]]: ...

    def settle(self, handles: Collection[Any]) -> Awaitable[None]: ...

    def sleep(self, seconds: float) -> Awaitable[None]: ...

    def foreign(self, awaitable: Awaitable[T]) -> Awaitable[T]: ...

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None: ...

    def close(self, context: RunContext) -> None: ...


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running on this thread, if any, asked without importing asyncio
    (none can run before it is imported)."""
    module = sys.modules.get("asyncio")
    return None if module is None else module._get_running_loop()


def is_cancelled(error: BaseException) -> bool:
    """Whether ``error`` is asyncio's ``CancelledError`` (never while asyncio is not imported)."""
    module = sys.modules.get("asyncio")
    return module is not None and isinstance(error, module.CancelledError)


def complete(coroutine: Coroutine[Any, Any, T], context: contextvars.Context | None = None) -> T:
    """Drive a coroutine of an inline run to its end: it never suspends, since all it awaits
    is its own code and what an ``InlineScheduler`` gives. It runs in ``context`` (default:
    a copy of the current one), as a task would: the context variables it sets (the step's
    run and console, its decimal context) stay with it."""
    if context is None:
        context = contextvars.copy_context()
    try:
        suspended_on = context.run(coroutine.send, None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    coroutine.close()
    raise RuntimeError(f"an inline run's coroutine suspended on {suspended_on!r}")


def end_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks a stopped loop still holds and run them to their end, so that none
    is destroyed pending (an abandoned step's task, for one); then close its generators."""
    import asyncio

    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


class _Ready:
    """An awaitable that is already done: awaiting it gives its value at once."""

    __slots__ = ("value",)

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, Any]:
        return self.value
        yield  # a generator function that returns before its first yield


class Done:
    """A coroutine spawned inline: ended already, with its value or its exception."""

    __slots__ = ("_error", "_value")

    def __init__(self, value: Any = None, error: Exception | None = None) -> None:
        self._value = value
        self._error = error

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self) -> bool:
        return False


class InlineScheduler:
    """Coroutines driven to their end on the caller's thread (see the module's docstring)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> Done:
        # As a task would: an exception ends the coroutine and waits in its result;
        # KeyboardInterrupt and SystemExit go on up at once.
        try:
            return Done(complete(coroutine))
        except Exception as error:
            return Done(error=error)

    def first_done(self, handles: Collection[Any]) -> Awaitable[set[Any]]:
        return _Ready(set(handles))

    def settle(self, handles: Collection[Any]) -> Awaitable[None]:
        return _Ready()

    def sleep(self, seconds: float) -> Awaitable[None]:
        time.sleep(seconds)
        return _Ready()

    def foreign(self, awaitable: Awaitable[T]) -> Awaitable[T]:
        if self._loop is None:
            import asyncio

            self._loop = asyncio.new_event_loop()
        return _Ready(self._loop.run_until_complete(_awaited(awaitable)))

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        callback()  # there is one thread: the caller's

    def close(self, context: RunContext) -> None:
        """Close the private loop, if one was made, with the resources made on it."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            loop.run_until_complete(context.close_loop_resources())
        finally:
            try:
                end_tasks(loop)
            finally:
                loop.close()


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


class LoopScheduler:
    """Coroutines as tasks of the asyncio event loop the run runs on."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def spawn(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        return self.loop.create_task(coroutine)

    async def first_done(self, handles: Collection[Any]) -> set[Any]:
        import asyncio

        done, _ = await asyncio.wait(handles, return_when=asyncio.FIRST_COMPLETED)
        return done

    async def settle(self, handles: Collection[Any]) -> None:
        import asyncio

        if handles:
            await asyncio.wait(handles)

    def sleep(self, seconds: float) -> Awaitable[None]:
        import asyncio

        return asyncio.sleep(seconds)

    def foreign(self, awaitable: Awaitable[T]) -> Awaitable[T]:
        return awaitable

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        self.loop.call_soon_threadsafe(callback)

    def close(self, context: RunContext) -> None:
        """Nothing to close: the loop is its owner's."""
