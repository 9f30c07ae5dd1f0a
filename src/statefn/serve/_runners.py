"""Where the server's runs execute: a local ``Engine``, or the distributed workers.

A ``Runner`` is the seam between the service and the machinery that runs plans. ``submit``
returns once the run is recorded in the ledger as ``queued``, so that the server can answer
"202, run recorded" truthfully; ``cancel`` says whether this runner held the run.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from statefn.engine import Engine, RunHandle

if TYPE_CHECKING:
    from statefn.distributed import Client

__all__ = ["BrokerRunner", "EngineRunner", "Runner"]


class Runner(Protocol):
    """Runs plans for the server; every run it takes is recorded in the server's ledger."""

    async def submit(self, plan: dict[str, Any], state: dict[str, Any]) -> str:
        """Queue a run of ``plan``; its id, once the ledger has the run."""
        ...

    def cancel(self, run_id: str) -> bool:
        """Cancel a run this runner holds; ``False`` when it holds no such run."""
        ...

    def problem(self) -> str | None:
        """What stops runs from being taken now, or ``None`` (for ``/healthz``)."""
        ...

    def close(self) -> None:
        """Stop taking runs, and let go of those in flight (the server is stopping)."""
        ...


class EngineRunner:
    """Runs on a local ``Engine`` that records every run in the ledger."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._running: dict[str, RunHandle] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    async def submit(self, plan: dict[str, Any], state: dict[str, Any]) -> str:
        handle = self.engine.submit(plan, state)
        self._running[handle.id] = handle
        watcher = asyncio.create_task(self._forget_when_done(handle))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        await handle.recorded_async()
        return handle.id

    async def _forget_when_done(self, handle: RunHandle) -> None:
        try:
            await handle.result_async()
        finally:
            self._running.pop(handle.id, None)

    def cancel(self, run_id: str) -> bool:
        handle = self._running.get(run_id)
        if handle is None:
            return False
        handle.cancel()
        return True

    def problem(self) -> str | None:
        return self.engine.problem()

    def close(self) -> None:
        """Cancel the runs in flight (recorded ``cancel``) rather than hold a stopping
        server for as long as they and the queued runs take."""
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

    def cancel(self, run_id: str) -> bool:
        """The distributed client has no cancel (contract section 10): never held here."""
        return False

    def problem(self) -> str | None:
        """The broker is reached on each submit; a failure there is that request's error."""
        return None

    def close(self) -> None:
        """Let go of the broker and ledger connections; the workers own the runs, and the
        broker keeps those not yet taken."""
        self.client.close()
