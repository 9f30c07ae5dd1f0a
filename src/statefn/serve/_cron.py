"""The cron scheduler: runs of workflows whose trigger has a ``cron`` expression (UTC).

Each schedule knows its next tick, computed from the time the server first saw it: a tick
missed while the server was down is not replayed, and a tick is fired once (the next tick
is always computed from a time after the one fired). Ticks missed while the server was
busy fire once, late, not once each. A schedule whose workflow stops validating is dropped
until it validates again (its next tick then counts from that moment). The clock is
injectable, so that a test can run an hour of schedules in a moment.

A tick is claimed in the ledger before it fires (``Ledger.claim_tick``), so that servers
sharing a ledger (and a folder) fire it once between them: the first to claim it.

A cron run starts at its trigger step with the input ``{"data": {"tick": ISO time}}``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from croniter import croniter

from ._service import Service

__all__ = ["Clock", "Scheduler", "SystemClock"]

_log = logging.getLogger("statefn.serve")
FIRED_KEPT = 100


class Clock(Protocol):
    """Where the scheduler reads the time and waits."""

    def now(self) -> datetime:
        """The time now, in UTC (timezone-aware)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class _Schedule:
    workflow: str
    step_id: str
    expression: str


def _after(expression: str, moment: datetime) -> datetime:
    """The first tick of ``expression`` strictly after ``moment``."""
    tick: datetime = croniter(expression, moment).get_next(datetime)
    return tick


class Scheduler:
    """Fires the project's cron triggers; ``run()`` until cancelled.

    It looks at the project's schedules at least every ``max_wait_s`` seconds, so a
    schedule added or changed on disk takes effect without a restart.
    """

    def __init__(self, service: Service, clock: Clock | None = None, max_wait_s: float = 1.0):
        self.service = service
        self.clock = clock or SystemClock()
        self.max_wait_s = max_wait_s
        self.next_ticks: dict[_Schedule, datetime] = {}
        # The last ticks fired: (workflow, step, tick, run id), newest last.
        self.fired: collections.deque[tuple[str, str, datetime, str]] = collections.deque(
            maxlen=FIRED_KEPT
        )

    def _sync(self, now: datetime) -> None:
        current = {
            _Schedule(workflow.name, trigger.step_id, trigger.cron)
            for workflow in self.service.workflows()
            for trigger in workflow.triggers
            if trigger.cron is not None
        }
        self.next_ticks = {
            schedule: self.next_ticks.get(schedule) or _after(schedule.expression, now)
            for schedule in current
        }

    def next_tick(self, workflow: str, step_id: str) -> datetime | None:
        """When the cron trigger ``step_id`` of ``workflow`` fires next (``None``: it has
        no schedule, or the scheduler has not seen it yet)."""
        return next(
            (
                due
                for schedule, due in self.next_ticks.items()
                if (schedule.workflow, schedule.step_id) == (workflow, step_id)
            ),
            None,
        )

    async def tick(self) -> float:
        """Fire every schedule that is due; the seconds until the next is (at most
        ``max_wait_s``)."""
        now = self.clock.now()
        self._sync(now)
        for schedule, due in sorted(self.next_ticks.items(), key=lambda item: item[1]):
            if due > now:
                continue
            # Advanced before firing: a run that fails to start is not retried for this tick.
            self.next_ticks[schedule] = _after(schedule.expression, max(due, now))
            await self._fire(schedule, due)
        if not self.next_ticks:
            return self.max_wait_s
        soonest = min(self.next_ticks.values())
        return max(0.0, min(self.max_wait_s, (soonest - self.clock.now()).total_seconds()))

    async def _fire(self, schedule: _Schedule, due: datetime) -> None:
        tick = due.isoformat().replace("+00:00", "Z")
        try:
            claimed = await asyncio.to_thread(
                self.service.ledger.claim_tick, schedule.workflow, schedule.step_id, due
            )
            if not claimed:
                _log.info("cron %s/%s at %s: fired by another server",
                          schedule.workflow, schedule.step_id, tick)  # fmt: skip
                return
            run_id = await self.service.start_run(
                schedule.workflow, {"data": {"tick": tick}}, start=schedule.step_id
            )
        except Exception as error:
            _log.error("cron %s/%s at %s: the run did not start: %s",
                       schedule.workflow, schedule.step_id, tick, error)  # fmt: skip
            return
        self.fired.append((schedule.workflow, schedule.step_id, due, run_id))
        _log.info("cron %s/%s at %s: run %s", schedule.workflow, schedule.step_id, tick, run_id)

    async def run(self) -> None:
        while True:
            try:
                wait = await self.tick()
            except Exception:
                # A schedule that cannot be read this turn is read again the next.
                _log.exception("the cron scheduler could not look at the schedules")
                wait = self.max_wait_s
            await self.clock.sleep(wait)
