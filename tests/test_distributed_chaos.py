"""Chaos: real SIGKILLs of distributed workers at each crash window, a stale attempt, a
poison run and a dropped ledger connection. After each, the same invariants: the run has
exactly one final reason, and no step run whose completion was recorded ran again (the
local HTTP server counts each step run's requests by idempotency key).

The window is detected from the ledger, then the worker that holds the run's lease is
killed: its run's process (``child``), the Celery worker's own process (``celery``, its
engine and run processes follow it by PDEATHSIG) or the whole process group (``whole``).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

import distributed_cluster as cluster
from distributed_cluster import (
    EffectServer,
    WorkerPool,
    effect_plan,
    finished_steps,
    queue_depths,
    run_row,
    wait_for,
)
from statefn import ledger
from statefn.distributed import Client

FINAL = ("success", "fail", "crash", "kill", "exception", "cancel", "lost")


rabbit_broker = cluster.rabbit_broker_fixture
module_queue = cluster.queue_fixture
effect_counter = cluster.effects_fixture
worker_pool = cluster.pool_fixture
ledger_client = cluster.client_fixture


def _final(ledger_url: str, run_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: (row := run_row(ledger_url, run_id))["status"] in FINAL and row, timeout=90
    )


# Each window: how to tell from the ledger (and the effect server) that the run is in it.
WINDOWS: dict[str, Callable[[str, str, EffectServer], bool]] = {
    "after-receiving": lambda url, run_id, fx: run_row(url, run_id)["attempt"] >= 1,
    "mid-step": lambda url, run_id, fx: fx.counts(run_id)["b"] >= 1,
    "step-recorded": lambda url, run_id, fx: "a" in finished_steps(url, run_id),
    "after-final": lambda url, run_id, fx: run_row(url, run_id)["status"] in FINAL,
}

CASES = [
    *((window, target) for window in WINDOWS for target in ("celery", "whole")),
    ("mid-step", "child"),
    ("step-recorded", "child"),
]


@pytest.mark.parametrize(("window", "target"), CASES, ids=[f"{w}-{t}" for w, t in CASES])
def test_a_kill_in_each_crash_window_ends_the_run_once_without_redoing_recorded_steps(
    pool: WorkerPool, client: Client, queue: str, effects: EffectServer,
    postgres_database: str, window: str, target: str,
) -> None:  # fmt: skip
    pool.ensure()
    run_id = client.submit(effect_plan(effects.url, delay=1.5), queue=queue)
    holder = pool.holder(postgres_database, run_id)
    wait_for(lambda: WINDOWS[window](postgres_database, run_id, effects), timeout=60)
    recorded = finished_steps(postgres_database, run_id)
    holder.kill(target, run_id)

    row = _final(postgres_database, run_id)
    counts = effects.counts(run_id)
    assert all(counts[key] == 1 for key in recorded), (recorded, counts)
    if target == "child":
        # The run's own process died: the engine ends the run with ExitError, once.
        record = client.ledger.run(run_id)
        assert (record.reason, record.error["name"]) == ("crash", "ExitError")
        assert row["attempt"] == 1
        return
    outcome = client.wait(run_id, timeout=10)
    assert (outcome.reason, outcome.state["data"]) == ("success", {"done": "c"})
    assert finished_steps(postgres_database, run_id) == {"a", "b", "c"}
    assert set(counts) == {"a", "b", "c"}
    # Killed before its end, the run was claimed once more; after it, never again.
    assert row["attempt"] == (1 if window == "after-final" else 2)


def test_a_poison_run_ends_with_crash_after_its_delivery_limit_and_is_dead_lettered(
    pool: WorkerPool, client: Client, broker: str, queue: str, effects: EffectServer,
    postgres_database: str,
) -> None:  # fmt: skip
    run_id = client.submit(effect_plan(effects.url, delay=5), queue=queue)
    for delivery in (1, 2, 3):
        pool.ensure()
        wait_for(lambda: run_row(postgres_database, run_id)["deliveries"] == delivery)  # noqa: B023
        wait_for(lambda: effects.counts(run_id)["b"] >= delivery)  # noqa: B023  (mid-step)
        pool.holder(postgres_database, run_id).kill("celery")
    pool.ensure()
    row = _final(postgres_database, run_id)
    record = client.ledger.run(run_id)
    assert (row["status"], record.error["name"]) == ("crash", "ExitError")
    assert "died during each of its 3 deliveries" in record.error["message"]
    assert effects.counts(run_id) == {"a": 1, "b": 3}  # a resumed from, never run again
    assert wait_for(lambda: queue_depths(broker).get(f"{queue}.dead") == 1)


def test_a_superseded_worker_cannot_record_steps_or_a_final_reason(
    pool: WorkerPool, client: Client, queue: str, effects: EffectServer,
    postgres_database: str,
) -> None:  # fmt: skip
    run_id, holder = pool.run_to_mid_step(client, effects, postgres_database, delay=2.5)
    # Another delivery takes the run over, as after a partition that kept the holder from
    # renewing its lease until it expired: attempt 2.
    with psycopg.connect(postgres_database, autocommit=True) as admin:
        admin.execute(
            "UPDATE runs SET attempt = attempt + 1, lease_owner = 'elsewhere' WHERE run_id = %s",
            (run_id,),
        )
    with ledger.open(postgres_database) as book:
        wait_for(lambda: "attempt 1 was superseded" in holder.log(), timeout=30)
        wait_for(lambda: effects.counts(run_id).get("b") == 1 and "Not recorded" in holder.log())
        record = book.run(run_id)
        assert record.status == "started"  # no final reason from attempt 1
        assert [(s.key, s.reason) for s in record.steps] == [("a", "success"), ("b", None)]
        assert "c" not in effects.counts(run_id)
        book.run_finished(
            run_id, reason="success", state=b"{}", error=None, duration_ms=1, attempt=2
        )


def test_a_dropped_ledger_connection_does_not_lose_the_run(
    pool: WorkerPool, client: Client, queue: str, effects: EffectServer,
    postgres_database: str,
) -> None:  # fmt: skip
    run_id, _ = pool.run_to_mid_step(client, effects, postgres_database, delay=1.5)
    with psycopg.connect(postgres_database, autocommit=True) as admin:
        dropped = admin.execute(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert dropped is not None and dropped[0] >= 2  # at least the workers' connections
    outcome = client.wait(run_id, timeout=90)
    assert (outcome.reason, outcome.state["data"]) == ("success", {"done": "c"})
    assert finished_steps(postgres_database, run_id) == {"a", "b", "c"}
    assert effects.counts(run_id) == {"a": 1, "b": 1, "c": 1}


def test_sigterm_lets_a_run_in_flight_finish_within_the_grace(
    pool: WorkerPool, client: Client, queue: str, effects: EffectServer,
    postgres_database: str,
) -> None:  # fmt: skip
    run_id, holder = pool.run_to_mid_step(client, effects, postgres_database, delay=1.5)
    assert holder.stop() == 0
    row = run_row(postgres_database, run_id)
    assert (row["status"], row["attempt"]) == ("success", 1)  # finished where it was
    assert effects.counts(run_id) == {"a": 1, "b": 1, "c": 1}
    assert "Shutting down: no new runs" in holder.log()


def test_sigterm_past_the_grace_hands_the_run_back_to_resume_elsewhere(
    broker: str, client: Client, effects: EffectServer, postgres_database: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    queue = f"grace-{uuid.uuid4().hex[:8]}"
    pair = WorkerPool(broker, postgres_database, queue, tmp_path, extra=("--grace", "1"))
    try:
        run_id, holder = pair.run_to_mid_step(client, effects, postgres_database, delay=4)
        assert holder.stop() == 0
        assert "handed back to the broker" in holder.log()
        outcome = client.wait(run_id, timeout=60)
        assert outcome.reason == "success"
        row = run_row(postgres_database, run_id)
        # Handed back (attempt 2, not counted as a delivery), then claimed elsewhere.
        assert (row["attempt"], row["deliveries"]) == (3, 1)
        assert effects.counts(run_id) == {"a": 1, "b": 2, "c": 1}
    finally:
        pair.stop()


def test_a_broker_restarted_mid_run_loses_nothing(
    pool: WorkerPool, client: Client, queue: str, effects: EffectServer,
    postgres_database: str,
) -> None:  # fmt: skip
    run_id, holder = pool.run_to_mid_step(client, effects, postgres_database, delay=3)
    try:
        subprocess.run(["rabbitmqctl", "stop_app"], capture_output=True, check=True)
        time.sleep(1)
    finally:
        subprocess.run(["rabbitmqctl", "start_app"], capture_output=True, check=True)
    subprocess.run(["rabbitmqctl", "await_startup"], capture_output=True, check=True)
    outcome = client.wait(run_id, timeout=90)
    assert (outcome.reason, outcome.state["data"]) == ("success", {"done": "c"})
    assert effects.counts(run_id) == {"a": 1, "b": 1, "c": 1}
    # The worker said it lost the broker and came back to it.
    wait_for(lambda: "Connection to broker lost" in holder.log(), timeout=30)
    wait_for(lambda: holder.log().count("Connected to amqp://") >= 2, timeout=60)
    # And it still takes runs.
    again = client.submit(effect_plan(effects.url, delay=0), queue=queue)
    assert client.wait(again, timeout=60).reason == "success"
