"""Distributed workers: throughput against a no-op Celery task, and latency (issue 13).

    .venv/bin/python bench/distributed.py        # -> bench/results/distributed.json and
                                                  #    the "Distributed workers" section of
                                                  #    bench/RESULTS.md

Everything runs on this host, in a throwaway RabbitMQ vhost and PostgreSQL database made for
the run and removed after it (``rabbitmqctl`` must work, as root).

- ``throughput``: 2,000 trivial runs (one step, ``fn(lambda state: state)``) submitted with
  ``Client.submit`` as fast as one thread can, through RabbitMQ to two ``statefn worker``
  processes (``--workers 2`` each) on the PostgreSQL ledger; runs per second from the first
  submit to the last final reason in the ledger. The reference, in the same run: 2,000
  messages of a no-op Celery task sent to two Celery workers with the same broker settings
  (the same app factory: quorum queue, ``acks_late``, prefetch 1, confirmed publishes, two
  threads each); tasks per second from the first send to the queue holding nothing ready or
  unacknowledged. Target: statefn >= 0.3x the no-op task's rate.
- ``latency``: on the idle cluster, 50 runs one at a time: submit to ``Client.wait``
  returning (the client's view, including its polling of the ledger), and the ledger's own
  ``submitted_at`` to ``finished_at``; p50 and p95 of each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from statefn.distributed import Client
from statefn.distributed._broker import TASK_NAME, make_app, publish

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REPORT = HERE / "RESULTS.md"
SECTION = "## Distributed workers (`bench/distributed.py`)"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
RUNS = 2_000
LATENCY_RUNS = 50
TARGET_RATIO = 0.3
PLAN = {"workflow": {"name": "bench", "steps": [{"id": "x", "expression": "fn(lambda s: s)"}]}}


@contextmanager
def services() -> Any:
    """A throwaway vhost and database: (broker URL, ledger URL)."""
    name = f"statefn_bench_{uuid.uuid4().hex[:12]}"
    subprocess.run(["rabbitmqctl", "add_vhost", name], capture_output=True, check=True)
    subprocess.run(
        ["rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        capture_output=True, check=True,
    )  # fmt: skip
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            f"amqp://guest:guest@127.0.0.1:5672/{name}",
            f"postgresql://postgres@127.0.0.1:5432/{name}",
        )
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", name], capture_output=True, check=False)
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def processes(commands: list[list[str]], ready: str) -> Any:
    """Start each command (in its own process group), wait for ``ready`` in its output."""
    started = []
    for number, command in enumerate(commands):
        log = Path(f"/tmp/statefn-bench-{os.getpid()}-{number}.log")
        handle = log.open("wb")
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        started.append((process, log, handle))
    try:
        for process, log, _ in started:
            deadline = time.monotonic() + 60
            while ready not in log.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{' '.join(process.args)} did not start:\n{log.read_text()}"
                    )
                time.sleep(0.1)
        yield
    finally:
        for process, log, handle in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            handle.close()
            log.unlink()


def statefn_workers(broker: str, ledger: str, queue: str) -> Any:
    command = [sys.executable, "-m", "statefn", "worker", "--broker", broker, "--ledger", ledger,
               "--queue", queue, "--workers", "2"]  # fmt: skip
    return processes([command, command], " ready.")


def noop_workers(broker: str, queue: str) -> Any:
    command = [sys.executable, __file__, "--noop-worker", broker, queue]
    return processes([command, command], " ready.")


def noop_worker(broker: str, queue: str) -> None:
    """A Celery worker with statefn's broker settings whose task does nothing."""
    app = make_app(broker, [queue])

    @app.task(name=TASK_NAME)  # type: ignore[misc]
    def run(run_id: str, body: dict[str, Any]) -> None:
        return None

    app.Worker(
        pool="threads", concurrency=2, queues=[queue], without_gossip=True, without_mingle=True,
        without_heartbeat=True, loglevel="INFO",
    ).start()  # fmt: skip


def finished(ledger: str, run_ids: list[str]) -> int:
    with psycopg.connect(ledger, autocommit=True) as connection:
        row = connection.execute(
            "SELECT COUNT(*) FROM runs WHERE run_id = ANY(%s) AND status = 'success'", (run_ids,)
        ).fetchone()
    return int(row[0]) if row else 0


def statefn_throughput(broker: str, ledger: str) -> dict[str, Any]:
    queue = "bench-statefn"
    with statefn_workers(broker, ledger, queue), Client(broker, ledger) as client:
        client.wait(client.submit(PLAN, queue=queue), timeout=60)  # warm
        started = time.perf_counter()
        run_ids = [client.submit(PLAN, queue=queue) for _ in range(RUNS)]
        submitted = time.perf_counter() - started
        while finished(ledger, run_ids) < RUNS:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    return {"runs": RUNS, "seconds": elapsed, "runs_per_s": RUNS / elapsed,
            "submit_seconds": submitted}  # fmt: skip


def unacknowledged(broker: str, queue: str) -> int:
    vhost = broker.rsplit("/", 1)[1]
    listed = subprocess.run(
        ["rabbitmqctl", "list_queues", "-p", vhost, "-q", "--no-table-headers", "name",
         "messages_unacknowledged"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(line.split() for line in listed.splitlines()).get(queue, 0)


def noop_throughput(broker: str) -> dict[str, Any]:
    """The end is when the queue has nothing ready (read every 5 ms with a passive declare);
    at most 4 tasks (2 workers x prefetch 1 x 2 threads) are still in hand then, and a no-op
    finishes in well under a millisecond. The unacknowledged count is checked to reach 0."""
    queue = "bench-noop"
    app = make_app(broker, [queue])
    with noop_workers(broker, queue), app.connection_for_write() as connection:
        channel = connection.default_channel
        started = time.perf_counter()
        for number in range(RUNS):
            publish(app, f"noop-{number}", queue, {})
        sent = time.perf_counter() - started
        while channel.queue_declare(queue, passive=True).message_count:
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        while int(unacknowledged(broker, queue)):
            time.sleep(0.1)
    return {"tasks": RUNS, "seconds": elapsed, "tasks_per_s": RUNS / elapsed, "send_seconds": sent}


def statefn_drain(broker: str, ledger: str) -> dict[str, Any]:
    """The workers alone: runs submitted before the workers start, timed by the ledger from
    the first run started to the last finished."""
    queue = "bench-drain"
    with Client(broker, ledger) as client:
        run_ids = [client.submit(PLAN, queue=queue) for _ in range(RUNS)]
    with statefn_workers(broker, ledger, queue):
        while finished(ledger, run_ids) < RUNS:
            time.sleep(0.05)
    with psycopg.connect(ledger, autocommit=True) as connection:
        first, last = connection.execute(
            "SELECT MIN(started_at), MAX(finished_at) FROM runs WHERE run_id = ANY(%s)", (run_ids,)
        ).fetchone() or (None, None)
    span = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
    return {"runs": RUNS, "seconds": span, "runs_per_s": RUNS / span}


def latency(broker: str, ledger: str) -> dict[str, Any]:
    queue = "bench-latency"
    client_ms: list[float] = []
    ledger_ms: list[float] = []
    with statefn_workers(broker, ledger, queue), Client(broker, ledger) as client:
        client.wait(client.submit(PLAN, queue=queue), timeout=60)  # warm
        for _ in range(LATENCY_RUNS):
            started = time.perf_counter()
            run_id = client.submit(PLAN, queue=queue)
            client.wait(run_id, timeout=60)
            client_ms.append((time.perf_counter() - started) * 1000)
            record = client.ledger.run(run_id)
            assert record.finished_at is not None
            span = datetime.fromisoformat(record.finished_at) - datetime.fromisoformat(
                record.submitted_at
            )
            ledger_ms.append(span.total_seconds() * 1000)
    return {"runs": LATENCY_RUNS, "client_p50_ms": percentile(client_ms, 50),
            "client_p95_ms": percentile(client_ms, 95), "ledger_p50_ms": percentile(ledger_ms, 50),
            "ledger_p95_ms": percentile(ledger_ms, 95)}  # fmt: skip


def percentile(values: list[float], pct: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def write_report(results: dict[str, Any]) -> None:
    t, n, lat = results["statefn"], results["noop"], results["latency"]
    met = "yes" if results["ratio"] >= TARGET_RATIO else "**no**"
    section = f"""{SECTION}

Written by `bench/distributed.py` on {results["date"]} (commit {results["commit"]}, {results["cpus"]} cores,
RabbitMQ {results["rabbitmq"]}, PostgreSQL on the same host); `bench/compare` rewrites this
file without it, so run `bench/distributed.py` after it. See docs/distributed.md for what is measured.

| workload | measure | statefn | reference | reference figure | ratio | target | met |
|---|---|---|---|---|---|---|---|
| {RUNS:,} trivial runs, 2 workers x 2 threads | runs per second | {t["runs_per_s"]:.1f} | no-op Celery task, same settings | {n["tasks_per_s"]:.1f} | {results["ratio"]:.2f} | ratio >= {TARGET_RATIO} | {met} |
| the same runs queued before the workers start | runs per second, first start to last end (ledger) | {results["drain"]["runs_per_s"]:.1f} | | | | | |
| idle cluster, {lat["runs"]} runs one at a time | submit to `Client.wait` p50 / p95 (ms) | {lat["client_p50_ms"]:.1f} / {lat["client_p95_ms"]:.1f} | | | | | |
| idle cluster, {lat["runs"]} runs one at a time | ledger `submitted_at` to `finished_at` p50 / p95 (ms) | {lat["ledger_p50_ms"]:.1f} / {lat["ledger_p95_ms"]:.1f} | | | | | |

Submitting the {RUNS:,} runs took {t["submit_seconds"]:.1f} s of the {t["seconds"]:.1f} s (one thread:
a ledger commit, a confirmed publish and a second commit per run); sending the no-op tasks took
{n["send_seconds"]:.1f} s of {n["seconds"]:.1f} s.
"""
    text = REPORT.read_text() if REPORT.exists() else ""
    if SECTION in text:
        text = text[: text.index(SECTION)].rstrip() + "\n"
    REPORT.write_text(f"{text.rstrip()}\n\n{section}" if text else section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--noop-worker", nargs=2, metavar=("BROKER", "QUEUE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.noop_worker:
        noop_worker(*args.noop_worker)
        return
    rabbitmq = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE, check=False).stdout.strip()  # fmt: skip
    with services() as (broker, ledger):
        noop = noop_throughput(broker)
        ours = statefn_throughput(broker, ledger)
        drain = statefn_drain(broker, ledger)
        lat = latency(broker, ledger)
    results = {
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "commit": commit,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "rabbitmq": rabbitmq,
        "statefn": ours,
        "noop": noop,
        "ratio": ours["runs_per_s"] / noop["tasks_per_s"],
        "drain": drain,
        "target_ratio": TARGET_RATIO,
        "latency": lat,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "distributed.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
