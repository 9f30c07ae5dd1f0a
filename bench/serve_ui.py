"""How fast the web UI's runs page answers with 100,000 runs in the ledger (issue 14).

    .venv/bin/python bench/serve_ui.py      # results to bench/results/serve_ui.json

A ``statefn serve`` process over a SQLite ledger holding ``RUNS`` runs of four workflows
(80% success, 15% fail, 5% crash). Requests go one at a time from one client on loopback,
interleaved so that both sides meet the same machine: ``GET /healthz`` (the reference,
measured in the same run) and the runs page's first page, a filtered page, and a page deep
in the history (keyset paging with ``before=``). Target: the runs page's p95 <= 5x the p95
of ``/healthz``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from statefn import ledger

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RUNS = 100_000
ROUNDS = 300
TARGET_RATIO = 5.0
WORKFLOW = "workflow:\n  name: {name}\n  steps:\n    - id: only\n      expression: \"fn(lambda s: s)\"\n"
NAMES = ("orders", "patients", "invoices", "contacts")


def fill(url: str) -> float:
    """Record ``RUNS`` finished runs; the seconds it took."""
    started = time.perf_counter()
    state = b'{"data": {"n": 1}}'
    with ledger.open(url) as book:
        for number in range(RUNS):
            run_id = str(uuid.uuid4())
            reason = "crash" if number % 20 == 0 else "fail" if number % 7 == 0 else "success"
            book.run_queued(
                run_id, engine_id=None, plan_id=None, workflow=NAMES[number % 4],
                input_state=state,
            )  # fmt: skip
            book.run_finished(run_id, reason=reason, state=state, error=None, duration_ms=3.0)
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2),
        "max_ms": round(ordered[-1], 2),
    }


def serve(project: Path) -> tuple[subprocess.Popen[bytes], str]:
    log = project.parent / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "statefn", "serve", str(project), "--port", "0"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while not (found := re.search(r"open (http://\S+)/ ", log.read_text())):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("statefn serve did not start:\n" + log.read_text())
        time.sleep(0.05)
    return process, found.group(1)


def measure(base: str, deep_before: str) -> dict[str, dict[str, float]]:
    paths = {
        "healthz": "/healthz",
        "runs_first_page": "/runs",
        "runs_filtered": "/runs?workflow=patients&reason=fail",
        "runs_deep_page": f"/runs?before={deep_before}",
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    with httpx.Client(base_url=base) as client:
        for path in paths.values():  # warm up
            client.get(path).raise_for_status()
        for _ in range(ROUNDS):
            for name, path in paths.items():
                started = time.perf_counter()
                response = client.get(path)
                samples[name].append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
    return {name: percentiles(values) for name, values in samples.items()}


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch, "project")
        (project / ".statefn").mkdir(parents=True)
        for name in NAMES:
            (project / f"{name}.yaml").write_text(WORKFLOW.format(name=name))
        url = f"sqlite:///{project}/.statefn/runs.db"
        fill_s = fill(url)
        with ledger.open(url) as book:
            deep_before = [run.run_id for run in book.runs(limit=RUNS // 2)][-1]
        process, base = serve(project)
        try:
            timings = measure(base, deep_before)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    reference = timings["healthz"]["p95_ms"]
    ratios = {
        name: round(figures["p95_ms"] / reference, 2)
        for name, figures in timings.items()
        if name != "healthz"
    }
    result = {
        "runs_in_ledger": RUNS,
        "fill_s": round(fill_s, 1),
        "rounds": ROUNDS,
        "timings": timings,
        "p95_ratio_to_healthz": ratios,
        "target_ratio": TARGET_RATIO,
        "met": all(ratio <= TARGET_RATIO for ratio in ratios.values()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve_ui.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
