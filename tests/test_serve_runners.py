"""The runners of ``statefn serve``: a run is in the ledger when ``submit`` returns, and the
local engine is given runs as it has room for them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from statefn import ledger
from statefn._errors import StatefnError
from statefn.engine import Engine
from statefn.serve import EngineRunner
from statefn.serve._http import RETRY_AFTER_S, error_response
from statefn.serve._runners import ROOM_PER_WORKER
from statefn.serve._service import Conflict, Unavailable

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
        assert await runner.cancel(waiting)
        assert not await runner.cancel("no-such-run")
        [ended] = await until_ended(url, [waiting])
        for run_id in busy:
            await runner.cancel(run_id)
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


def all_run_ids(url: str) -> set[str]:
    with ledger.open(url) as book:
        return {run.run_id for run in book.runs(limit=1000)}


def test_runs_past_the_waiting_limit_are_refused_unrecorded_until_one_starts(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    runner = EngineRunner(Engine(workers=1, ledger=url), max_waiting_runs=2)

    async def scenario() -> None:
        running = [await runner.submit(SPIN, {"data": {}}) for _ in range(ROOM_PER_WORKER)]
        waiting = [await runner.submit(SPIN, {"data": {}}) for _ in range(2)]
        with pytest.raises(StatefnError, match=r"^2 runs \(0\.0 MB of input states\) are "
                           r"waiting for a worker, the most this server holds \(2 runs, "):
            await runner.submit(SPIN, {"data": {"refused": True}})
        assert await asyncio.to_thread(all_run_ids, url) == {*running, *waiting}
        await runner.cancel(running[0])  # room in the engine: the oldest waiting run starts
        await until_ended(url, running[:1])
        taken = None
        deadline = time.monotonic() + 30
        while taken is None and time.monotonic() < deadline:
            try:
                taken = await runner.submit(SPIN, {"data": {}})
            except StatefnError:
                await asyncio.sleep(0.02)
        assert taken is not None and taken in await asyncio.to_thread(all_run_ids, url)

    try:
        asyncio.run(scenario())
    finally:
        runner.close()


def test_input_states_past_the_waiting_bytes_are_refused_but_one_run_always_fits(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    runner = EngineRunner(Engine(workers=1, ledger=url), max_waiting_bytes=1000)
    big = {"data": {"text": "x" * 2000}}

    async def scenario() -> None:
        running = [await runner.submit(SPIN, {"data": {}}) for _ in range(ROOM_PER_WORKER)]
        first = await runner.submit(SPIN, big)  # larger than the bound, but nothing waits
        with pytest.raises(StatefnError, match="waiting for a worker"):
            await runner.submit(SPIN, {"data": {"text": "y" * 100}})
        assert await asyncio.to_thread(all_run_ids, url) == {*running, first}

    try:
        asyncio.run(scenario())
    finally:
        runner.close()


def test_a_503_tells_the_sender_when_to_try_again() -> None:
    response = error_response(Unavailable("The run could not be recorded: busy"))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER_S)
    assert "Retry-After" not in error_response(Conflict("finished")).headers


def test_every_accepted_webhook_of_a_server_killed_with_sigkill_ends_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 202 means the run is in the ledger: those the engine had started and those still
    # waiting in the server for room alike, when the server dies at once.
    import json
    import os
    import signal

    from conftest import start_server
    from statefn.engine import _recorder

    project = tmp_path / "project"
    project.mkdir()
    flow = {
        "workflow": {
            "name": "stuck",
            "steps": [
                {"id": "open", "webhook": True, "next": "spin"},
                {"id": "spin", "expression": "fn(lambda s: [0 for _ in iter(int, 1)])"},
            ],
        }
    }
    (project / "stuck.json").write_text(json.dumps(flow))
    server = start_server(project, "--workers", "1")
    try:
        accepted = []
        for _ in range(3 * ROOM_PER_WORKER):
            answer = server.client.post("/hooks/stuck/open", json={"n": 1})
            assert answer.status_code == 202
            accepted.append(answer.json()["run_id"])
        url = f"sqlite:///{project / '.statefn' / 'runs.db'}"
        assert "queued" in statuses(url, accepted)  # some still wait in the server
    finally:
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        server.client.close()
        assert server.process.stdout is not None
        server.process.stdout.close()
    monkeypatch.setattr(_recorder, "LOST_AFTER_S", 0.5)
    time.sleep(1.0)
    with Engine(workers=1, ledger=url):
        pass
    with ledger.open(url) as book:
        reasons = [book.run(run_id).reason for run_id in accepted]
    assert reasons == ["lost"] * len(accepted)


def _template_of(server_pid: int) -> int:
    """The pid of the engine template the server ``server_pid`` started."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == server_pid and b"engine._template" in command:
            return int(entry.name)
    raise AssertionError(f"server {server_pid} has no engine template")


@pytest.mark.parametrize(("args", "below"), [((), 10), (("--worker-nice", "3"), 3)])
def test_the_servers_workers_run_below_its_cpu_priority(
    tmp_path: Path, args: tuple[str, ...], below: int
) -> None:
    # A busy machine answers webhooks (a row in the ledger each) before it runs their runs.
    import os

    from conftest import start_server

    project = tmp_path / "project"
    project.mkdir()
    server = start_server(project, *args)
    try:
        template = _template_of(server.process.pid)
        server_nice = os.getpriority(os.PRIO_PROCESS, server.process.pid)
        assert os.getpriority(os.PRIO_PROCESS, template) == min(server_nice + below, 19)
    finally:
        server.stop()


def test_a_worker_nice_outside_0_to_19_is_a_usage_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    answer = subprocess.run(
        [sys.executable, "-m", "statefn", "serve", str(tmp_path), "--worker-nice", "20"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert answer.returncode == 2
    assert "expected a nice value from 0 to 19, got '20'" in answer.stderr
