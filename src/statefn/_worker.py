"""Step workers: the threads where operations run.

A step's operations run on a worker thread with an event loop of its own, never on the
thread that runs the workflow. That thread stays free to deliver events and to notice a
timeout even while an operation blocks (``time.sleep``, a busy loop, a blocking call in an
async operation): the step then ends on time and its worker is abandoned, since a thread
cannot be killed from inside its process. Abandoned workers are daemon threads; they stop
when the blocking call returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from ._context import RunContext
from ._scheduler import end_tasks

__all__ = ["StepWorker", "WorkerPool"]

T = TypeVar("T")


class StepWorker:
    """A daemon thread running an event loop."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.abandoned = False
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            try:
                end_tasks(self.loop)
            finally:
                self.loop.close()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def abandon(self) -> None:
        """Give the worker up: its loop stops as soon as the running operation lets it."""
        self.abandoned = True
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def close(self, run: RunContext) -> None:
        """Close the run's resources made on this worker's loop, then stop the thread."""
        try:
            await asyncio.wrap_future(self.submit(run.close_loop_resources()))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=1)


class WorkerPool:
    """The workers of one run: reused from step to step, replaced when abandoned."""

    def __init__(self, run: RunContext) -> None:
        self._run = run
        self._idle: list[StepWorker] = []
        self._count = 0

    def acquire(self) -> StepWorker:
        if self._idle:
            return self._idle.pop()
        self._count += 1
        return StepWorker(f"statefn-{self._run.run_id[:8]}-{self._count}")

    def release(self, worker: StepWorker) -> None:
        if not worker.abandoned:
            self._idle.append(worker)

    async def close(self) -> None:
        workers, self._idle = self._idle, []
        for worker in workers:
            await worker.close(self._run)
