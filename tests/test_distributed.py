"""statefn.distributed: the ledger's leases and outbox, resume through the engine, and
runs end to end through RabbitMQ and two ``statefn worker`` processes (contract 10, 11).

Crash windows and kills are in test_distributed_chaos.py; the services and worker processes
come from distributed_cluster.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import distributed_cluster as cluster
import statefn
from distributed_cluster import (
    STATEFN,
    EffectServer,
    WorkerPool,
    effect_plan,
    rows,
    wait_for,
)
from statefn import ledger
from statefn._repo import install
from statefn.cli import main
from statefn.distributed import Client
from statefn.distributed._broker import make_app, publish
from statefn.engine import Engine
from statefn.ledger import StaleAttemptError

FIXTURES = Path(__file__).parent / "fixtures"

# -- the ledger: leases, fencing, outbox --------------------------------------------------

MESSAGE = orjson.dumps({"run_id": "r", "queue": "q", "body": {}})


def _queued(book: ledger.Ledger, run_id: str = "r1", queue: str = "q") -> str:
    book.run_queued(
        run_id, engine_id=None, plan_id=None, workflow="w", input_state=b"{}",
        outbox=(queue, MESSAGE),
    )  # fmt: skip
    return run_id


def test_a_superseded_attempt_cannot_record_anything(ledger_url: str) -> None:
    with ledger.open(ledger_url) as book:
        run_id = _queued(book)
        first = _expired_claim(book, run_id)
        second = book.claim(run_id, "w2", lease_s=30)
        assert (first.kind, first.attempt, second.kind, second.attempt) == ("run", 1, "run", 2)
        stale_writes = [
            lambda: book.run_started(run_id, attempt=1),
            lambda: book.step_started(run_id, "a", "a", input_state=b"{}", attempt=1),
            lambda: book.log(
                run_id, step_id="a", level="info", message="x", time="2026-01-01", attempt=1
            ),
            lambda: book.run_finished(
                run_id, reason="success", state=b"{}", error=None, duration_ms=1, attempt=1
            ),
        ]
        for write in stale_writes:
            with pytest.raises(StaleAttemptError, match="now on attempt 2: attempt 1 may not"):
                write()
        assert book.run(run_id).status == "queued" and book.logs(run_id) == []
        assert book.renew(run_id, 1, lease_s=30) is False
        book.run_finished(
            run_id, reason="success", state=b"{}", error=None, duration_ms=1, attempt=2
        )
        assert book.run(run_id).reason == "success"


def _expired_claim(book: ledger.Ledger, run_id: str) -> ledger.Claim:
    """A claim by w1 whose lease has run out (as if w1 died)."""
    claim = book.claim(run_id, "w1", lease_s=0.01)
    time.sleep(0.05)
    return claim


def test_a_live_lease_holds_off_another_delivery_until_it_expires(ledger_url: str) -> None:
    with ledger.open(ledger_url) as book:
        run_id = _queued(book)
        book.claim(run_id, "w1", lease_s=30)
        held = book.claim(run_id, "w2", lease_s=30)
        assert held.kind == "held" and 25 < held.wait_s <= 30 and held.attempt == 1
        assert book.claim(run_id, "w1", lease_s=30).kind == "held"  # even for its holder
        other = _queued(book, "r2")
        _expired_claim(book, other)
        taken = book.claim(other, "w2", lease_s=30)
        assert (taken.kind, taken.attempt, taken.deliveries) == ("run", 2, 2)


def test_a_finished_run_is_a_duplicate_and_an_unknown_run_is_unknown(ledger_url: str) -> None:
    with ledger.open(ledger_url) as book:
        run_id = _queued(book)
        claim = book.claim(run_id, "w1", lease_s=30)
        book.run_finished(
            run_id, reason="fail", state=None, error=None, duration_ms=1, attempt=claim.attempt
        )
        assert book.claim(run_id, "w2", lease_s=30).kind == "finished"
        assert book.claim("nope", "w2", lease_s=30).kind == "unknown"


def test_a_handed_back_run_does_not_count_as_a_delivery_and_fences_its_attempt(
    ledger_url: str,
) -> None:
    with ledger.open(ledger_url) as book:
        run_id = _queued(book)
        claim = book.claim(run_id, "w1", lease_s=30)
        assert book.release(run_id, claim.attempt) is True
        record = rows_of(book, run_id)
        assert (record["status"], record["deliveries"]) == ("queued", 0)
        with pytest.raises(StaleAttemptError):
            book.run_finished(
                run_id, reason="cancel", state=None, error=None, duration_ms=1,
                attempt=claim.attempt,
            )  # fmt: skip
        again = book.claim(run_id, "w2", lease_s=30)
        assert (again.kind, again.attempt, again.deliveries) == ("run", 3, 1)


def test_a_run_no_worker_holds_is_cancelled_at_once_and_its_old_holder_fenced(
    ledger_url: str,
) -> None:
    with ledger.open(ledger_url) as book:
        waiting = _queued(book, "r1")
        assert book.cancel(waiting) == "cancelled"
        record = book.run(waiting)
        assert (record.reason, record.error, record.finished_at is not None) == (
            "cancel", None, True
        )  # fmt: skip
        time.sleep(0.01)
        assert book.outbox_pending(older_than_s=0) == []  # its message is not published
        assert book._db.rows("SELECT run_id FROM outbox", ()) == []
        assert book.claim(waiting, "w1", lease_s=30).kind == "finished"

        abandoned = _queued(book, "r2")
        stale = _expired_claim(book, abandoned)  # its holder is gone, or cut off
        assert book.cancel(abandoned) == "cancelled"
        with pytest.raises(StaleAttemptError):
            book.step_started(abandoned, "a", "a", input_state=b"{}", attempt=stale.attempt)
        assert book.renew(abandoned, stale.attempt, lease_s=30) is False
        assert book.run(abandoned).reason == "cancel"


def test_a_cancel_of_a_held_run_is_noted_for_its_worker_or_the_next_delivery(
    ledger_url: str,
) -> None:
    with ledger.open(ledger_url) as book:
        running = _queued(book, "r1")
        claim = book.claim(running, "w1", lease_s=30)
        assert book.cancel_requested(running) is False
        assert book.cancel(running) == "requested"
        assert book.cancel_requested(running) is True
        assert book.run(running).reason is None  # its worker ends it, with its attempt
        book.run_finished(
            running, reason="cancel", state=None, error=None, duration_ms=1,
            attempt=claim.attempt,
        )  # fmt: skip
        assert book.cancel(running) == "finished"

        orphan = _queued(book, "r2")
        book.claim(orphan, "w1", lease_s=0.3)
        assert book.cancel(orphan) == "requested"
        time.sleep(0.4)  # w1 died before it saw the note; its lease runs out
        again = book.claim(orphan, "w2", lease_s=30)
        assert (again.kind, again.attempt) == ("cancelled", 2)
        assert book.run(orphan).reason == "cancel"
        assert book.claim(orphan, "w3", lease_s=30).kind == "finished"


def test_only_distributed_runs_are_cancelled_through_the_ledger(ledger_url: str) -> None:
    with ledger.open(ledger_url) as book:
        book.run_queued("local", engine_id=None, plan_id=None, workflow="w", input_state=None)
        assert book.cancel("local") == "local"
        assert book.run("local").status == "queued"
        assert book.cancel("nope") == "unknown"


def rows_of(book: ledger.Ledger, run_id: str) -> dict[str, Any]:
    status, deliveries = book._db.rows(
        "SELECT status, deliveries FROM runs WHERE run_id = ?", (run_id,)
    )[0]
    return {"status": status, "deliveries": deliveries}


def test_distributed_runs_are_never_marked_lost_when_their_engine_is_gone(
    ledger_url: str,
) -> None:
    with ledger.open(ledger_url) as book:
        book.register_engine("gone", "host", 1)
        run_id = _queued(book)
        claim = book.claim(run_id, "w1", lease_s=30)
        book.run_started(run_id, attempt=claim.attempt, engine_id="gone")
        book.run_queued("local", engine_id="gone", plan_id=None, workflow="w", input_state=None)
        book.retire_engine("gone")
        assert book.mark_lost(dead_after_s=0) == ["local"]
        assert book.run(run_id).status == "started"


def test_the_outbox_holds_a_message_until_it_is_published_or_its_run_claimed(
    ledger_url: str,
) -> None:
    with ledger.open(ledger_url) as book:
        first, second = _queued(book, "r1"), _queued(book, "r2")
        time.sleep(0.01)
        assert book.outbox_pending(older_than_s=0) == [
            ("r1", "q", MESSAGE), ("r2", "q", MESSAGE)
        ]  # fmt: skip
        assert book.outbox_pending(older_than_s=60) == []
        book.outbox_published(first)
        book.claim(second, "w1", lease_s=30)
        assert book.outbox_pending(older_than_s=0) == []
        # A published message (with its input state) is not kept.
        assert book._db.rows("SELECT run_id FROM outbox", ()) == [("r2",)]


def test_completed_steps_are_those_that_succeeded_or_failed_with_their_outputs(
    ledger_url: str,
) -> None:
    with ledger.open(ledger_url) as book:
        run_id = _queued(book)
        for key, reason in (("a", "success"), ("b", "fail"), ("c", "crash"), ("d", None)):
            book.step_started(run_id, key, key, input_state=b"{}")
            if reason is not None:
                book.step_finished(
                    run_id, key, reason=reason, output_state=orjson.dumps({"k": key}),
                    error=None, duration_ms=1, mem=None,
                )  # fmt: skip
        assert book.completed_steps(run_id) == {"a": {"k": "a"}, "b": {"k": "b"}}


# -- resume through the engine ------------------------------------------------------------

RESUMABLE = {
    "workflow": {
        "steps": [
            {"id": "a", "expression": "fn(lambda s: 1 / 0)", "next": {"b": "state['data']['go']"}},
            {"id": "b", "expression": "fn(lambda s: {**s, 'data': {'b': s['data']['go']}})"},
        ]
    }
}


def test_a_resumed_run_takes_recorded_outputs_and_runs_only_the_rest(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with ledger.open(url) as book:
        run_id = _queued(book)
        claim = book.claim(run_id, "w1", lease_s=30)
        book.step_started(run_id, "a", "a", input_state=b"{}", attempt=claim.attempt)
        book.step_finished(
            run_id, "a", reason="success", output_state=b'{"data": {"go": 7}}',
            error=None, duration_ms=1, mem=None, attempt=claim.attempt,
        )  # fmt: skip
        with Engine(workers=1, ledger=url) as engine:
            outcome = engine.submit(
                RESUMABLE, run_id=run_id, attempt=claim.attempt,
                resume=book.completed_steps(run_id),
            ).result(timeout=60)  # fmt: skip
        assert (outcome.reason, outcome.state) == ("success", {"data": {"b": 7}})
        record = book.run(run_id)
        assert [(step.key, step.reason) for step in record.steps] == [
            ("a", "success"), ("b", "success")
        ]  # fmt: skip
        assert book.state(run_id, "a") == {"data": {"go": 7}}
        assert (record.reason, record.attempt) == ("success", 1)


def test_an_engine_run_for_a_superseded_attempt_records_nothing_more(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    plan = {"workflow": {"steps": [{"id": "a", "expression": "fn(lambda s: s)"}]}}
    with ledger.open(url) as book:
        run_id = _queued(book)
        _expired_claim(book, run_id)
        book.claim(run_id, "w2", lease_s=30)
        with Engine(workers=1, ledger=url) as engine:
            outcome = engine.submit(plan, run_id=run_id, attempt=1).result(timeout=60)
        assert outcome.reason == "success"
        record = book.run(run_id)
        assert (record.status, record.steps, record.engine_id) == ("queued", [], None)


# -- the idempotency key ------------------------------------------------------------------


def test_http_sends_the_step_runs_idempotency_key_when_configured(
    effects_alone: EffectServer,
) -> None:
    configuration = {"base_url": effects_alone.url, "idempotency": True}
    plan = {
        "workflow": {
            "steps": [
                {"id": "send", "adaptors": ["http"], "configuration": configuration,
                 "expression": "post('/effect/1')\npost('/effect/2')\nget('/effect/3')"},
                {"id": "plain", "adaptors": ["http"], "configuration": {"base_url": effects_alone.url},
                 "expression": "post('/effect/4')"},
            ]
        }
    }  # fmt: skip
    plan["workflow"]["steps"][0]["next"] = {"plain": True}
    statefn.run(plan)
    keys = effects_alone.keys
    assert len(keys) == 4 and keys[0] == keys[1]
    assert re.fullmatch(r"[0-9a-f]{32}:send", keys[0])
    assert keys[2:] == ["none", "none"]  # GET, and a step without the setting


@pytest.fixture
def effects_alone() -> Iterator[EffectServer]:
    with cluster.effect_server() as effects:
        yield effects


# -- end to end: RabbitMQ, PostgreSQL, two worker processes ---------------------------------


rabbit_broker = cluster.rabbit_broker_fixture
module_queue = cluster.queue_fixture
effect_counter = cluster.effects_fixture
worker_pool = cluster.pool_fixture
ledger_client = cluster.client_fixture


def test_runs_submitted_here_end_on_two_worker_processes(
    pool: WorkerPool, client: Client, queue: str, effects: EffectServer
) -> None:
    plan = effect_plan(effects.url, delay=0.3)
    run_ids = [client.submit(plan, {"data": {"n": n}}, queue=queue) for n in range(8)]
    outcomes = [client.wait(run_id, timeout=90) for run_id in run_ids]
    assert [(o.reason, o.state["data"]) for o in outcomes] == [("success", {"done": "c"})] * 8
    engines = rows(
        client.ledger.url.replace("***", ""),
        "SELECT COUNT(DISTINCT engine_id) FROM runs WHERE run_id = ANY(%s)",
        (run_ids,),
    )
    assert engines == [(2,)]  # both workers took runs
    for run_id in run_ids:
        assert effects.counts(run_id) == {"a": 1, "b": 1, "c": 1}


def test_a_running_run_cancelled_through_the_client_stops_on_its_worker(
    pool: WorkerPool, client: Client, queue: str
) -> None:
    spinning = client.submit(_one_step("fn(lambda s: sum(range(10**13)))"), queue=queue)
    wait_for(lambda: client.ledger.run(spinning).status == "started", timeout=60)
    assert client.cancel(spinning) == "requested"
    outcome = client.wait(spinning, timeout=60)  # the sum alone would take hours
    assert (outcome.reason, outcome.state, outcome.error) == ("cancel", None, None)
    assert client.cancel(spinning) == "finished"
    after = client.submit(_one_step("fn(lambda s: {'data': {'ok': 1}})"), queue=queue)
    assert client.wait(after, timeout=60).state == {"data": {"ok": 1}}


def test_a_worker_gives_steps_its_hosts_credentials_and_repo_adaptors(
    pool: WorkerPool, client: Client, broker: str, postgres_database: str, queue: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    credentials = tmp_path / "creds.json"
    credentials.write_text(json.dumps({"api": {"user": "ada", "password": "s3cret-ada"}}))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    install(str(FIXTURES / "adaptors" / "greet-project"), tmp_path / "repo")
    plan = {"workflow": {"steps": [{
        "id": "x", "configuration": "api", "adaptors": ["greet@1.0.0"],
        "expression": "fn(lambda s: {'data': {'hi': hello(s['configuration']['user'])}})",
    }]}}  # fmt: skip
    own_queue = f"{queue}-credentials"
    with cluster.workers(
        broker, postgres_database, own_queue, tmp_path, 1,
        "--credentials", str(credentials), "--repo-dir", str(tmp_path / "repo"),
    ):  # fmt: skip
        run_id = client.submit(plan, queue=own_queue)
        outcome = client.wait(run_id, timeout=60)
        assert (outcome.reason, "ada" in outcome.state["data"]["hi"]) == ("success", True)
    bodies = rows(postgres_database, "SELECT body FROM states")
    assert bodies and not [body for (body,) in bodies if b"s3cret-ada" in bytes(body)]

    without = client.wait(client.submit(plan, queue=queue), timeout=60)  # the pool has none
    assert without.reason == "exception"
    assert "unknown credential 'api'" in without.error["message"]


def _submit(
    broker: str, ledger_url: str, queue: str, plan: dict[str, Any], tmp_path: Path, *flags: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"plan-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(plan))
    return subprocess.run(
        [*STATEFN, "submit", str(path), "--broker", broker, "--ledger", ledger_url,
         "--queue", queue, *flags],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _one_step(expression: str, **options: Any) -> dict[str, Any]:
    return {"options": options, "workflow": {"steps": [{"id": "x", "expression": expression}]}}


@pytest.mark.parametrize(
    ("expression", "options", "code"),
    [
        ("fn(lambda s: print('hello from x') or {'data': {'ok': 1}})", {}, 0),
        ("fn(lambda s: 1 / 0)", {}, 1),
        ("fn(lambda s: [0] * 10**9)", {}, 4),
    ],
    ids=["success", "fail", "kill"],
)
def test_submit_wait_follows_the_run_and_exits_with_its_code(
    pool: WorkerPool, broker: str, postgres_database: str, queue: str,
    tmp_path: Path, expression: str, options: dict[str, Any], code: int,
) -> None:  # fmt: skip
    done = _submit(
        broker, postgres_database, queue, _one_step(expression, **options), tmp_path, "--wait"
    )
    assert done.returncode == code, done.stderr
    run_id = done.stdout.splitlines()[0]
    assert rows(postgres_database, "SELECT run_id FROM runs WHERE run_id = %s", (run_id,))
    if code == 0:
        assert json.loads(done.stdout.split("\n", 1)[1]) == {"data": {"ok": 1}}
        assert "[x] info: hello from x" in done.stderr  # its logs, followed
    else:
        assert f"Run {run_id} ended with" in done.stderr


def test_submit_of_an_invalid_plan_queues_nothing(
    broker: str, postgres_database: str, queue: str, tmp_path: Path
) -> None:
    before = rows(postgres_database, "SELECT COUNT(*) FROM runs")
    done = _submit(broker, postgres_database, queue, {"workflow": {"steps": []}}, tmp_path)
    assert done.returncode == 3 and done.stdout == ""
    assert "steps" in done.stderr
    bad_job = _submit(broker, postgres_database, queue, _one_step("fn(lambda s: "), tmp_path)
    assert bad_job.returncode == 3, bad_job.stderr
    assert rows(postgres_database, "SELECT COUNT(*) FROM runs") == before


def test_logs_follow_from_another_process_sees_a_running_runs_lines(
    pool: WorkerPool, client: Client, queue: str, effects: EffectServer,
    postgres_database: str,
) -> None:  # fmt: skip
    expression = (
        "fn(lambda s: print('first line') or s)\n"
        f"post('{effects.url}/effect/slow?delay=1.0')\n"
        "fn(lambda s: print('last line') or s)"
    )
    plan = {"workflow": {"steps": [{"id": "talk", "adaptors": ["http"], "expression": expression}]}}
    run_id = client.submit(plan, queue=queue)
    wait_for(lambda: client.ledger.logs(run_id), timeout=60)
    assert client.ledger.run(run_id).reason is None  # still running: follow for real
    follower = subprocess.run(
        [*STATEFN, "runs", "logs", run_id, "--follow", "--ledger", postgres_database],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert follower.returncode == 0
    assert "first line" in follower.stdout and "last line" in follower.stdout
    assert client.ledger.run(run_id).reason == "success"


def test_worker_and_submit_without_broker_or_ledger_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STATEFN_BROKER", raising=False)
    monkeypatch.delenv("STATEFN_LEDGER", raising=False)
    assert main(["worker"]) == 2
    assert "No --broker URL (or $STATEFN_BROKER) and no --ledger URL" in capsys.readouterr().err
    monkeypatch.setenv("STATEFN_LEDGER", "postgresql://x/y")
    assert main(["submit", "plan.json"]) == 2
    assert "No --broker URL (or $STATEFN_BROKER) given" in capsys.readouterr().err


def test_a_worker_credentials_file_that_cannot_be_read_stops_it_before_it_connects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger_file = tmp_path / "runs.db"
    services = ["--broker", "amqp://nowhere.invalid", "--ledger", f"sqlite:///{ledger_file}"]
    assert main(["worker", *services, "--credentials", str(tmp_path / "none.json")]) == 3
    assert f"File not found: {tmp_path / 'none.json'}" in capsys.readouterr().err
    (tmp_path / "list.json").write_text("[1]")
    assert main(["worker", *services, "--credentials", str(tmp_path / "list.json")]) == 3
    assert "expected a map of credential id to configuration" in capsys.readouterr().err
    assert not ledger_file.exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (
            ["--broker", "amqp://guest:s3cret@127.0.0.1:1/x"],
            "The broker amqp://guest:***@127.0.0.1:1/x",
        ),
        (
            ["--ledger", "postgresql://postgres:s3cret@127.0.0.1:1/x"],
            "The run ledger postgresql://postgres:***@127.0.0.1:1/x",
        ),
    ],
    ids=["broker", "ledger"],
)
def test_an_unreachable_broker_or_ledger_is_named_masked_with_exit_3(
    broker: str, postgres_database: str, tmp_path: Path, flags: list[str], named: str
) -> None:
    services = {"--broker": broker, "--ledger": postgres_database}
    services[flags[0]] = flags[1]
    for command in (["worker"], ["submit", str(tmp_path / "plan.json")]):
        (tmp_path / "plan.json").write_text(json.dumps(_one_step("fn(lambda s: s)")))
        done = subprocess.run(
            [*STATEFN, *command, *(item for pair in services.items() for item in pair)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 3, done.stderr
        assert named in done.stderr and "s3cret" not in done.stderr


def test_a_run_recorded_but_never_published_is_published_by_a_worker(
    pool: WorkerPool, client: Client, queue: str
) -> None:
    # What a submitter that died between its commit and its publish leaves behind.
    run_id = str(uuid.uuid4())
    plan = _one_step("fn(lambda s: {'data': {'from': 'outbox'}})")
    message = {
        "run_id": run_id,
        "queue": queue,
        "body": {"plan": plan, "state": None, "options": {}},
    }
    client.ledger.run_queued(
        run_id, engine_id=None, plan_id=None, workflow=None, input_state=None,
        outbox=(queue, orjson.dumps(message)),
    )  # fmt: skip
    outcome = client.wait(run_id, timeout=60)
    assert (outcome.reason, outcome.state) == ("success", {"data": {"from": "outbox"}})
    assert f"Run {run_id} published from the outbox" in pool.logs()


def test_a_message_the_worker_cannot_run_still_ends_its_run(
    pool: WorkerPool, client: Client, broker: str, queue: str
) -> None:
    run_id = str(uuid.uuid4())
    body = {"plan": _one_step("fn(lambda s: s)"), "state": None, "options": {"bogus": 1}}
    message = {"run_id": run_id, "queue": queue, "body": body}
    client.ledger.run_queued(
        run_id, engine_id=None, plan_id=None, workflow=None, input_state=None,
        outbox=(queue, orjson.dumps(message)),
    )  # fmt: skip
    publish(make_app(broker, [queue]), run_id, queue, body)
    client.ledger.outbox_published(run_id)
    outcome = client.wait(run_id, timeout=60)
    assert (outcome.reason, outcome.error["name"]) == ("exception", "WorkerStartError")
    assert "bogus" in outcome.error["message"]
