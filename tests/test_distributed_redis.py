"""statefn.distributed over Redis: end to end, a killed worker's run delivered again (after
the visibility timeout) and resumed, and a poison run ended, as over RabbitMQ.

Redis has no dead-letter queue: a poison run ends with ``crash`` in the ledger and its
message is dropped.
"""

from __future__ import annotations

import distributed_cluster as cluster
from distributed_cluster import (
    EffectServer,
    WorkerPool,
    effect_plan,
    finished_steps,
    run_row,
    wait_for,
)
from statefn.distributed import Client

# A message not acknowledged within 4 s goes to another worker; a run's lease (3 s in these
# tests) expires before that.
WORKER_ARGS = ("--visibility-timeout", "4")


redis_broker = cluster.redis_broker_fixture
module_queue = cluster.queue_fixture
effect_counter = cluster.effects_fixture
worker_pool = cluster.pool_fixture
ledger_client = cluster.client_fixture


def test_runs_end_on_two_workers_over_redis(
    pool: WorkerPool, client: Client, queue: str, effects: EffectServer
) -> None:
    run_ids = [client.submit(effect_plan(effects.url, delay=0.2), queue=queue) for _ in range(4)]
    outcomes = [client.wait(run_id, timeout=60) for run_id in run_ids]
    assert [(o.reason, o.state["data"]) for o in outcomes] == [("success", {"done": "c"})] * 4
    assert all(effects.counts(run_id) == {"a": 1, "b": 1, "c": 1} for run_id in run_ids)


def test_a_killed_workers_run_is_delivered_again_and_resumed_over_redis(
    pool: WorkerPool, client: Client, queue: str, effects: EffectServer,
    postgres_database: str,
) -> None:  # fmt: skip
    run_id, holder = pool.run_to_mid_step(client, effects, postgres_database, delay=1.5)
    recorded = finished_steps(postgres_database, run_id)
    holder.kill("whole")
    pool.ensure()
    outcome = client.wait(run_id, timeout=90)
    assert (outcome.reason, outcome.state["data"]) == ("success", {"done": "c"})
    assert recorded == {"a"}
    assert effects.counts(run_id) == {"a": 1, "b": 2, "c": 1}
    assert run_row(postgres_database, run_id)["attempt"] == 2


def test_a_poison_run_ends_after_its_delivery_limit_over_redis(
    pool: WorkerPool, client: Client, queue: str, effects: EffectServer,
    postgres_database: str,
) -> None:  # fmt: skip
    run_id = client.submit(effect_plan(effects.url, delay=30), queue=queue)
    for delivery in (1, 2, 3):
        pool.ensure()
        wait_for(lambda: effects.counts(run_id)["b"] >= delivery, timeout=60)  # noqa: B023
        pool.holder(postgres_database, run_id).kill("celery")
    pool.ensure()
    record = client.wait(run_id, timeout=90)
    assert (record.reason, record.error["name"]) == ("crash", "ExitError")
    assert "died during each of its 3 deliveries" in record.error["message"]
    assert effects.counts(run_id) == {"a": 1, "b": 3}  # a resumed from, never run again
