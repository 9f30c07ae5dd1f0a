"""Where the server's runs execute: a local ``Engine``, or the distributed workers.

A ``Runner`` is the seam between the service and the machinery that runs plans. ``submit``
returns once the run is recorded in the ledger as ``queued``, so that the server can answer
"202, run recorded" truthfully; ``cancel`` says whether this runner could cancel the run.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from statefn._errors import StatefnError
from statefn.engine import Engine, RunHandle

if TYPE_CHECKING:
    from statefn.distributed import Client

__all__ = [
    "MAX_WAITING_BYTES",
    "MAX_WAITING_RUNS",
    "ROOM_PER_WORKER",
    "BrokerRunner",
    "EngineRunner",
    "Runner",
]

# Runs an ``EngineRunner`` gives its engine at once, for each worker: enough that a worker
# that ends a run finds the next one waiting.
ROOM_PER_WORKER = 2
# Runs recorded and not yet given to the engine wait in the server's memory with their
# input states. Past either bound a new run is refused (503, nothing recorded) until some
# have started: a sender that retries loses nothing, where a flood that grew the server
# until the kernel killed it would leave every waiting run lost.
MAX_WAITING_RUNS = 100_000
MAX_WAITING_BYTES = 256 * 1024 * 1024  # of the waiting runs' input states, as JSON
_MB = 1024 * 1024


def _new_run_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs, as ``uuid.uuid4`` makes them, from one read of
    the system's randomness: ``uuid4`` makes a system call for each, which under a burst of
    webhooks also hands the interpreter lock to the engine's threads once a request."""
    random = os.urandom(16 * count)
    return [
        str(uuid.UUID(bytes=random[at : at + 16], version=4)) for at in range(0, 16 * count, 16)
    ]


class Runner(Protocol):
    """Runs plans for the server; every run it takes is recorded in the server's ledger."""

    async def submit(self, plan: dict[str, Any], state: dict[str, Any]) -> str:
        """Queue a run of ``plan``; its id, once the ledger has the run."""
        ...

    async def cancel(self, run_id: str) -> bool:
        """Cancel a run this runner started; ``False`` when it cannot (not its run)."""
        ...

    def problem(self) -> str | None:
        """What stops runs from being taken now, or ``None`` (for ``/healthz``)."""
        ...

    def close(self) -> None:
        """Stop taking runs, and let go of those in flight (the server is stopping)."""
        ...


class EngineRunner:
    """Runs on a local ``Engine`` that records every run in the ledger.

    A run is recorded as queued at once, and the runs that arrive while a commit is made
    share the next one; it then waits here until the engine has room for it (the engine
    holds at most ``ROOM_PER_WORKER`` runs a worker). So a burst of webhooks costs each
    request a row in the ledger, not the preparation of a run that waits for a worker.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_waiting_runs: int = MAX_WAITING_RUNS,
        max_waiting_bytes: int = MAX_WAITING_BYTES,
    ) -> None:
        self.engine = engine
        self._room = ROOM_PER_WORKER * engine.workers
        self._max_runs = max_waiting_runs
        self._max_bytes = max_waiting_bytes
        self._arriving: list[tuple[dict[str, Any], dict[str, Any], int]] = []
        # Done once the runs arriving now are in the ledger: their ids, in arrival order.
        self._arrived: asyncio.Future[list[str]] | None = None
        # Recorded and not yet given to the engine, oldest first.
        self._waiting: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        # The size (as JSON) of the input state of each run recorded or being recorded and
        # not yet given to the engine; of those and the arriving runs' together.
        self._sizes: dict[str, int] = {}
        self._held_bytes = 0
        self._running: dict[str, RunHandle] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    async def submit(self, plan: dict[str, Any], state: dict[str, Any]) -> str:
        size = len(orjson.dumps(state))
        held = len(self._arriving) + len(self._sizes)
        if held >= self._max_runs or (held and self._held_bytes + size > self._max_bytes):
            raise StatefnError(
                f"{held:,} runs ({self._held_bytes / _MB:,.1f} MB of input states) are "
                f"waiting for a worker, the most this server holds ({self._max_runs:,} runs, "
                f"{self._max_bytes / _MB:,.0f} MB): try again once some have started"
            )
        if self._arrived is None:
            # The requests read in this turn of the event loop join this commit.
            loop = asyncio.get_running_loop()
            self._arrived = loop.create_future()
            loop.call_soon(self._record, loop)
        place = len(self._arriving)
        self._arriving.append((plan, state, size))
        self._held_bytes += size
        # Shielded: a request that goes away does not cancel its neighbours' commit.
        run_ids = await asyncio.shield(self._arrived)
        return run_ids[place]

    def _record(self, loop: asyncio.AbstractEventLoop) -> None:
        """Ask the engine to record the runs that arrived until now, in one commit."""
        arriving, self._arriving = self._arriving, []
        arrived, self._arrived = self._arrived, None
        assert arrived is not None
        runs = []
        for run_id, (plan, state, size) in zip(_new_run_ids(len(arriving)), arriving, strict=True):
            runs.append((run_id, plan, state))
            self._sizes[run_id] = size
        try:
            committed = self.engine.queue(runs)
        except StatefnError as error:  # the engine is closed
            self._not_recorded(runs, arrived, error)
            return
        committed.add_done_callback(
            lambda _: loop.call_soon_threadsafe(self._recorded, runs, arrived, committed)
        )

    def _recorded(
        self,
        runs: list[tuple[str, dict[str, Any], dict[str, Any]]],
        arrived: asyncio.Future[list[str]],
        committed: Future[None],
    ) -> None:
        """The runs are in the ledger (or ``committed`` says why not): answer their
        requests, and let them wait for the engine."""
        error = committed.exception()
        if error is not None:
            self._not_recorded(runs, arrived, error)
            return
        for run_id, plan, state in runs:
            self._waiting[run_id] = (plan, state)
        arrived.set_result([run_id for run_id, _, _ in runs])
        self._feed()

    def _not_recorded(
        self,
        runs: list[tuple[str, dict[str, Any], dict[str, Any]]],
        arrived: asyncio.Future[list[str]],
        error: BaseException,
    ) -> None:
        for run_id, _, _ in runs:
            self._held_bytes -= self._sizes.pop(run_id)
        arrived.set_exception(error)

    def _feed(self) -> None:
        while self._waiting and len(self._running) < self._room:
            run_id = next(iter(self._waiting))
            self._start(run_id, *self._waiting.pop(run_id))

    def _start(self, run_id: str, plan: dict[str, Any], state: dict[str, Any]) -> RunHandle:
        self._held_bytes -= self._sizes.pop(run_id)
        handle = self.engine.submit(plan, state, run_id, queued=True)
        self._running[run_id] = handle
        watcher = asyncio.create_task(self._forget_when_done(handle))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return handle

    async def _forget_when_done(self, handle: RunHandle) -> None:
        try:
            await handle.result_async()
        finally:
            self._running.pop(handle.id, None)
        self._feed()  # not when the server stops: its event loop then cancels this task

    async def cancel(self, run_id: str) -> bool:
        handle = self._running.get(run_id)
        if handle is None:
            waiting = self._waiting.pop(run_id, None)
            if waiting is None:
                return False
            handle = self._start(run_id, *waiting)  # the engine records its end as cancel
        handle.cancel()
        return True

    def problem(self) -> str | None:
        return self.engine.problem()

    def close(self) -> None:
        """Cancel the runs in flight and those waiting (each recorded ``cancel``) rather
        than hold a stopping server for as long as they take."""
        for run_id, (plan, state) in self._waiting.items():
            self.engine.submit(plan, state, run_id, queued=True)
        self._waiting.clear()
        self._sizes.clear()
        self._held_bytes = 0
        self.engine.close(wait=False)


class BrokerRunner:
    """Runs through ``statefn.distributed``: a broker carries them on ``queue`` to
    ``statefn worker`` hosts, which record them in the same ledger (contract section 10)."""

    def __init__(self, client: Client, queue: str = "default") -> None:
        self.client = client
        self.queue = queue

    async def submit(self, plan: dict[str, Any], state: dict[str, Any]) -> str:
        # The client talks to the broker and the ledger: blocking calls, off the event loop.
        run_id: str = await asyncio.to_thread(self.client.submit, plan, state, queue=self.queue)
        return run_id

    async def cancel(self, run_id: str) -> bool:
        """Cancel through the ledger, which the workers watch: any distributed run can be
        cancelled from here, whoever submitted it."""
        result = await asyncio.to_thread(self.client.cancel, run_id)
        return result in ("cancelled", "requested")

    def problem(self) -> str | None:
        """The broker is reached on each submit; a failure there is that request's error."""
        return None

    def close(self) -> None:
        """Let go of the broker and ledger connections; the workers own the runs, and the
        broker keeps those not yet taken."""
        self.client.close()
