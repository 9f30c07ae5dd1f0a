"""``statefn serve --broker``: runs started through the server go through RabbitMQ to a
``statefn worker`` process and are followed through the shared PostgreSQL ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import distributed_cluster as cluster
from conftest import start_server

rabbit_broker = cluster.rabbit_broker_fixture
queue_name = cluster.queue_fixture

FLOW = {
    "workflow": {
        "name": "orders",
        "steps": [
            {"id": "hook", "webhook": True, "next": "total"},
            {
                "id": "total",
                "expression": "fn(lambda s: print('adding up') or "
                "{**s, 'data': {'total': sum(s['data']['amounts'])}})",
            },
        ],
    }
}
SPIN = {"workflow": {"steps": [{"id": "spin", "expression": "fn(lambda s: sum(range(10**13)))"}]}}


@pytest.mark.timeout(180)
def test_runs_started_through_the_server_run_on_a_distributed_worker(
    broker: str, queue: str, postgres_database: str, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "orders.json").write_text(json.dumps(FLOW))
    (project / "spin.json").write_text(json.dumps(SPIN))
    with cluster.workers(broker, postgres_database, queue, tmp_path, 1):
        server = start_server(
            project, "--broker", broker, "--ledger", postgres_database, "--queue", queue
        )
        try:
            started = server.client.post("/api/workflows/orders/runs", json={"data": {"amounts": [1, 2]}})
            assert started.status_code == 202, started.text
            run = server.finished(started.json()["run_id"], timeout=60)
            assert (run["workflow"], run["reason"]) == ("orders", "success")
            assert [step["key"] for step in run["steps"]] == ["total"]
            output = server.client.get(f"/api/runs/{run['run_id']}/steps/total/state").json()
            assert output["state"] == {"data": {"total": 3}}
            logs = server.client.get(f"/api/runs/{run['run_id']}/logs").json()["logs"]
            assert [line["message"] for line in logs] == ["adding up"]

            hooked = server.client.post("/hooks/orders/hook", json={"amounts": [5]})
            assert hooked.status_code == 202, hooked.text
            assert server.finished(hooked.json()["run_id"], timeout=60)["reason"] == "success"

            again = server.client.post(f"/api/runs/{run['run_id']}/cancel")
            assert again.status_code == 409
            assert "has already ended (success)" in again.json()["error"]["message"]

            spinning = server.client.post("/api/workflows/spin/runs", json={}).json()["run_id"]
            cluster.wait_for(
                lambda: server.client.get(f"/api/runs/{spinning}").json()["status"] == "started",
                timeout=60,
            )
            cancelled = server.client.post(f"/api/runs/{spinning}/cancel")
            assert (cancelled.status_code, cancelled.json()) == (202, {"cancelled": True})
            assert server.finished(spinning, timeout=60)["reason"] == "cancel"
        finally:
            server.stop()
