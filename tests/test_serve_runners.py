"""The runners of ``statefn serve``: a run is in the ledger when ``submit`` returns, and the
local engine is given runs as it has room for them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from statefn import ledger
from statefn.engine import Engine
from statefn.serve import EngineRunner
from statefn.serve._runners import ROOM_PER_WORKER

pytestmark = pytest.mark.timeout(90)

BUSY = {
    "workflow": {
        "name": "busy",
        "steps": [{"id": "busy", "expression": "fn(lambda s: [0 for _ in range(10**6)] and s)"}],
    }
}
SPIN = {
    "workflow": {
        "name": "spin",
        "steps": [{"id": "spin", "expression": "fn(lambda s: [0 for _ in iter(int, 1)])"}],
    }
}


def statuses(url: str, run_ids: list[str]) -> list[str]:
    with ledger.open(url) as book:
        return [book.run(run_id).status for run_id in run_ids]


async def until_ended(url: str, run_ids: list[str]) -> list[str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(statuses, url, run_ids)
        if not {"queued", "started"} & set(found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"runs still unfinished: {found}")


def test_runs_beyond_the_engines_room_are_recorded_at_once_and_all_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    runner = EngineRunner(Engine(workers=1, ledger=url))
    many = ROOM_PER_WORKER + 3

    async def scenario() -> list[str]:
        run_ids = await asyncio.gather(*(runner.submit(BUSY, {"data": {}}) for _ in range(many)))
        assert len(set(run_ids)) == many
        found = await asyncio.to_thread(statuses, url, run_ids)
        assert set(found) <= {"queued", "started"}
        assert found.count("queued") >= many - ROOM_PER_WORKER
        return await until_ended(url, run_ids)

    try:
        assert asyncio.run(scenario()) == ["success"] * many
    finally:
        runner.close()


def test_a_run_cancelled_while_it_waits_for_the_engine_ends_cancel_and_never_starts(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    runner = EngineRunner(Engine(workers=1, ledger=url))

    async def scenario() -> tuple[list[str], str]:
        busy = [await runner.submit(SPIN, {"data": {}}) for _ in range(ROOM_PER_WORKER)]
        waiting = await runner.submit(SPIN, {"data": {}})
        assert runner.cancel(waiting)
        assert not runner.cancel("no-such-run")
        [ended] = await until_ended(url, [waiting])
        for run_id in busy:
            runner.cancel(run_id)
        return await until_ended(url, busy), ended

    try:
        busy, ended = asyncio.run(scenario())
    finally:
        runner.close()
    assert (busy, ended) == (["cancel"] * ROOM_PER_WORKER, "cancel")


def test_close_ends_the_runs_still_waiting_as_cancel(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    runner = EngineRunner(Engine(workers=1, ledger=url))

    async def scenario() -> list[str]:
        return [await runner.submit(SPIN, {"data": {}}) for _ in range(ROOM_PER_WORKER + 2)]

    run_ids = asyncio.run(scenario())
    runner.close()
    assert statuses(url, run_ids) == ["cancel"] * len(run_ids)
    with ledger.open(url) as book:
        assert book.run(run_ids[-1]).started_at is None
