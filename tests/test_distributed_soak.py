"""Soak: 1,000 runs across two workers while a chaos loop SIGKILLs a worker every few
seconds (its Celery process or its whole process group, in turn) and starts another.

Marked ``soak``: it runs in the default suite (about two and a half minutes on a shared
2-core machine); ``-m "not soak"`` leaves it out.
"""

from __future__ import annotations

import random
import threading
import uuid
from pathlib import Path

import pytest

import distributed_cluster as cluster
from distributed_cluster import (
    EffectServer,
    WorkerPool,
    rabbit_vhost,
    rows,
    wait_for,
)
from statefn.distributed import Client

RUNS = 1_000
KILL_EVERY_S = 3.0


def _plan(base_url: str) -> dict[str, object]:
    configuration = {"base_url": base_url, "idempotency": True}
    return {
        "workflow": {
            "steps": [
                {"id": "a", "adaptors": ["http"], "configuration": configuration,
                 "expression": "post('/effect/a')", "next": {"b": True}},
                {"id": "b", "adaptors": ["http"], "configuration": configuration,
                 "expression": "post('/effect/b')"},
            ]
        }
    }  # fmt: skip


effect_counter = cluster.effects_fixture


@pytest.mark.soak
@pytest.mark.timeout(600)
def test_a_thousand_runs_all_end_once_while_workers_keep_dying(
    postgres_database: str, effects: EffectServer, tmp_path: Path
) -> None:
    with rabbit_vhost() as broker, Client(broker, postgres_database) as client:
        queue = f"soak-{uuid.uuid4().hex[:8]}"
        # Deliveries are not the subject here: no run should become poison by bad luck.
        pool = WorkerPool(
            broker, postgres_database, queue, tmp_path, extra=("--max-deliveries", "20")
        )
        stop = threading.Event()
        kills: list[str] = []

        def chaos() -> None:
            while not stop.wait(KILL_EVERY_S):
                victim = random.choice(pool.workers)
                target = ("celery", "whole")[len(kills) % 2]
                victim.kill(target)
                kills.append(target)
                pool.ensure()

        try:
            pool.ensure()
            killer = threading.Thread(target=chaos, daemon=True)
            killer.start()
            run_ids = [client.submit(_plan(effects.url), queue=queue) for _ in range(RUNS)]

            def ended() -> bool:
                done = rows(
                    postgres_database,
                    "SELECT COUNT(*) FROM runs WHERE run_id = ANY(%s) "
                    "AND status NOT IN ('queued', 'started')",
                    (run_ids,),
                )
                return done[0][0] == RUNS

            wait_for(ended, timeout=400, every=0.5)
            stop.set()
            killer.join()
        finally:
            stop.set()
            pool.stop()

    outcomes = rows(
        postgres_database,
        "SELECT run_id, status, attempt FROM runs WHERE run_id = ANY(%s)",
        (run_ids,),
    )
    assert {status for _, status, _ in outcomes} == {"success"}
    assert len(kills) >= 3, kills
    for run_id, _, attempt in outcomes:
        counts = effects.counts(run_id)
        # Every step ran; none more than once per delivery (the exact rule, that a recorded
        # step never runs again, is checked window by window in test_distributed_chaos.py).
        assert set(counts) == {"a", "b"}
        assert max(counts.values()) <= attempt, (run_id, counts, attempt)
