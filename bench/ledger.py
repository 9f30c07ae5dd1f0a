"""What recording runs in the ledger costs (issue: engine and run ledger).

    .venv/bin/python bench/ledger.py       # results to bench/results/ledger.json

Workloads, each the median of several rounds:

- ``two_step_run``: the writes an engine makes for one 2-step run (queued, started, two
  steps started and finished, four log lines, finished) with small states, on a SQLite file
  and, when a server answers on 127.0.0.1:5432, on PostgreSQL. Target: <= 2 ms per run on
  SQLite.
- ``big_state``: a ~17 MB state as one step's output and the next step's input (hashed and
  stored once).
- ``import``: the start-up cost of ``import statefn.ledger`` after ``import statefn``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from statefn import ledger

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ROUNDS = 5
RUNS_PER_ROUND = 200
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def record_two_step_run(book: ledger.Ledger, run_id: str, states: list[bytes]) -> None:
    book.run_queued(
        run_id, engine_id="bench", plan_id="plan", workflow="bench", input_state=states[0]
    )
    book.run_started(run_id)
    for number, step_id in enumerate(("fetch", "clean")):
        key = f"{step_id}-1"
        book.step_started(run_id, key, step_id, input_state=states[number])
        book.logs_many(
            run_id,
            [
                {"step_id": step_id, "level": "info", "message": "working", "time": "2026-01-31"},
                {"step_id": step_id, "level": "info", "message": "done", "time": "2026-01-31"},
            ],
        )
        book.step_finished(
            run_id, key, reason="success", output_state=states[number + 1], error=None,
            duration_ms=1, mem={"rss_mb": 30},
        )  # fmt: skip
    book.run_finished(run_id, reason="success", state=states[2], error=None, duration_ms=2)


def per_run_ms(url: str) -> dict[str, float]:
    rounds: list[float] = []
    with ledger.open(url) as book:
        book.register_engine("bench", platform.node(), 0)
        for _ in range(ROUNDS):
            started = time.perf_counter()
            for _ in range(RUNS_PER_ROUND):
                run_id = str(uuid.uuid4())
                # Each run's states differ, as real runs' do: nothing is deduplicated.
                states = [orjson.dumps({"data": {"run": run_id, "n": n}}) for n in range(3)]
                record_two_step_run(book, run_id, states)
            rounds.append((time.perf_counter() - started) * 1000 / RUNS_PER_ROUND)
    return {"ms_per_run_median": statistics.median(rounds), "ms_per_run_min": min(rounds)}


def big_state_ms(url: str) -> dict[str, float]:
    sys.path.insert(0, str(HERE))
    from compare_lib.statefn_side import records  # the 17 MB records of bench/compare

    data = records(100_000)
    rounds: list[float] = []
    with ledger.open(url) as book:
        for number in range(ROUNDS):
            run_id = str(uuid.uuid4())
            book.run_queued(run_id, engine_id=None, plan_id=None, workflow="big", input_state=None)
            book.step_started(run_id, "a-1", "a", input_state=None)
            # A new state each round (nothing to deduplicate), and the next step's input a
            # copy of it, as the engine decodes each from its own frame.
            output = orjson.dumps({"round": number, "data": {"records": data}})
            given_on = bytes(bytearray(output))
            started = time.perf_counter()
            book.step_finished(
                run_id, "a-1", reason="success", output_state=output, error=None,
                duration_ms=1, mem=None,
            )  # fmt: skip
            book.step_started(run_id, "b-1", "b", input_state=given_on)
            rounds.append((time.perf_counter() - started) * 1000)
    return {"state_mb": len(output) / 1e6, "ms_output_then_input_median": statistics.median(rounds)}


def import_ms() -> float:
    script = (
        "import time, statefn; t = time.perf_counter(); import statefn.ledger; "
        "print((time.perf_counter() - t) * 1000)"
    )
    samples = [
        float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True).stdout)
        for _ in range(ROUNDS)
    ]  # fmt: skip
    return statistics.median(samples)


def postgres_url() -> tuple[str, str] | None:
    """A throwaway database's URL and name, or None without a server."""
    import psycopg

    name = f"statefn_bench_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        return None
    return f"postgresql://postgres@127.0.0.1:5432/{name}", name


def drop_postgres(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "target_ms_per_run_sqlite": 2.0,
    }
    with tempfile.TemporaryDirectory() as folder:
        sqlite = f"sqlite:///{folder}/runs.db"
        results["two_step_run_sqlite"] = per_run_ms(sqlite)
        results["big_state_sqlite"] = big_state_ms(sqlite)
    postgres = postgres_url()
    if postgres is not None:
        try:
            results["two_step_run_postgresql"] = per_run_ms(postgres[0])
            results["big_state_postgresql"] = big_state_ms(postgres[0])
        finally:
            drop_postgres(postgres[1])
    results["import_statefn_ledger_ms"] = import_ms()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ledger.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
