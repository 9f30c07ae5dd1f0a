"""The cron scheduler of ``statefn serve``, on a clock the test moves: real runs on a real
engine and ledger, an hour of schedules in a moment."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from statefn import ledger
from statefn.engine import Engine
from statefn.serve import EngineRunner, Project, Scheduler, Service

START = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)


def flow(cron: str, expression: str = "fn(lambda s: s)") -> str:
    return json.dumps(
        {
            "workflow": {
                "name": "nightly",
                "steps": [
                    {"id": "every", "cron": cron, "next": "work"},
                    {"id": "work", "expression": expression},
                ],
            }
        }
    )


class TestClock:
    """A clock that moves only when the scheduler sleeps (or the test says so)."""

    __test__ = False

    def __init__(self, start: datetime) -> None:
        self.time = start

    def now(self) -> datetime:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.time += timedelta(seconds=seconds)
        await asyncio.sleep(0)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "nightly.json").write_text(flow("*/2 * * * *"))
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    running = Service(
        Project(project), ledger.open(url), EngineRunner(Engine(workers=1, ledger=url))
    )
    yield running
    running.close()


async def run_until(scheduler: Scheduler, clock: TestClock, end: datetime) -> None:
    """Tick and sleep as the server does until ``end``, checking each tick fires on time."""
    while clock.time < end:
        fired = len(scheduler.fired)
        wait = await scheduler.tick()
        for _, _, due, _ in list(scheduler.fired)[fired:]:
            assert timedelta(0) <= clock.time - due < timedelta(seconds=1)
        await clock.sleep(wait)


def ticks(scheduler: Scheduler) -> list[str]:
    return [due.strftime("%H:%M") for _, _, due, _ in scheduler.fired]


def test_each_tick_fires_one_run_on_time(service: Service) -> None:
    clock = TestClock(START)
    scheduler = Scheduler(service, clock)
    asyncio.run(run_until(scheduler, clock, START + timedelta(minutes=10)))
    assert ticks(scheduler) == ["10:02", "10:04", "10:06", "10:08", "10:10"]
    runs = service.ledger.runs(workflow="nightly", limit=100)
    assert sorted(run.run_id for run in runs) == sorted(run for *_, run in scheduler.fired)
    first = scheduler.fired[0][3]
    assert service.ledger.state(first, which="input") == {"data": {"tick": "2026-03-02T10:02:00Z"}}


def test_a_tick_missed_while_the_server_was_down_is_not_replayed(service: Service) -> None:
    clock = TestClock(START)
    asyncio.run(run_until(Scheduler(service, clock), clock, START + timedelta(minutes=3)))
    clock.time = START + timedelta(minutes=7)  # down from 10:03:30 to 10:07:30
    restarted = Scheduler(service, clock)
    asyncio.run(run_until(restarted, clock, START + timedelta(minutes=10)))
    assert ticks(restarted) == ["10:08", "10:10"]


def test_ticks_missed_while_the_server_was_busy_fire_once(service: Service) -> None:
    clock = TestClock(START)
    scheduler = Scheduler(service, clock)

    async def stalled() -> None:
        await scheduler.tick()
        clock.time += timedelta(minutes=9)  # the loop was blocked past four ticks
        await scheduler.tick()
        await scheduler.tick()

    asyncio.run(stalled())
    assert ticks(scheduler) == ["10:02"]
    assert scheduler.next_ticks and min(scheduler.next_ticks.values()) > clock.time


def test_servers_sharing_a_ledger_and_a_folder_fire_each_tick_once_between_them(
    service: Service,
) -> None:
    url = service.ledger.url
    other = Service(
        service.project, ledger.open(url), EngineRunner(Engine(workers=1, ledger=url))
    )
    clock = TestClock(START)
    schedulers = [Scheduler(service, clock), Scheduler(other, clock)]

    async def both_until(end: datetime) -> None:
        while clock.time < end:
            waits = [await scheduler.tick() for scheduler in schedulers]
            await clock.sleep(min(waits))

    try:
        asyncio.run(both_until(START + timedelta(minutes=10)))
    finally:
        other.close()
    fired = sorted(tick for scheduler in schedulers for tick in ticks(scheduler))
    assert fired == ["10:02", "10:04", "10:06", "10:08", "10:10"]
    assert len(service.ledger.runs(workflow="nightly", limit=100)) == 5


def test_a_schedule_is_paused_while_its_file_does_not_validate_and_resumes_after(
    service: Service,
) -> None:
    clock = TestClock(START)
    scheduler = Scheduler(service, clock)
    path = service.project.root / "nightly.json"

    async def scenario() -> None:
        await run_until(scheduler, clock, START + timedelta(minutes=2))
        path.write_text(flow("*/2 * * * *", expression="fn(lambda s: s"))  # a syntax error
        assert service.project.refresh()
        await run_until(scheduler, clock, START + timedelta(minutes=6))
        path.write_text(flow("*/2 * * * *"))
        assert service.project.refresh()
        await run_until(scheduler, clock, START + timedelta(minutes=8))

    asyncio.run(scenario())
    assert ticks(scheduler) == ["10:02", "10:08"]


def test_a_bad_cron_expression_is_a_workflow_error_naming_the_field(service: Service) -> None:
    (service.project.root / "nightly.json").write_text(flow("*/2 * *"))
    service.project.refresh()
    workflow = service.workflow("nightly")
    assert not workflow.triggers
    assert "workflow.steps[0].cron: '*/2 * *' has 3 fields, not 5" in workflow.errors[0]


def test_a_running_server_schedules_its_cron_triggers(tmp_path: Path) -> None:
    from conftest import start_server

    project = tmp_path / "project"
    project.mkdir()
    (project / "nightly.json").write_text(flow("* * * * *"))
    running = start_server(project)
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        trigger: dict[str, str | None] = {}
        while not trigger.get("next_tick") and datetime.now(UTC) < deadline:
            workflows = running.client.get("/api/workflows").json()["workflows"]
            trigger = workflows[0]["triggers"][0]
        assert trigger["cron"] == "* * * * *"
        tick = datetime.fromisoformat(str(trigger["next_tick"]))
        assert timedelta(0) < tick - datetime.now(UTC) <= timedelta(seconds=60)
        assert (tick.second, tick.microsecond) == (0, 0)
    finally:
        running.stop()
