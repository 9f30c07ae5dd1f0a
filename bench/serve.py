"""What ``statefn serve`` costs per request (issue 14), against references measured in the
same run on the same machine.

    .venv/bin/python bench/serve.py        # -> bench/results/serve.json and bench/RESULTS.md

Workloads:

- ``webhook_intake``: ``POST /hooks/intake/open`` with a small JSON body, answered ``202``
  only once the run is recorded in the ledger (SQLite, the default), while the server's
  engine (2 workers) runs what arrives. Reference: a bare ASGI hello-world on the same stack
  (uvicorn with the same options, one process), the two measured alternately. Target: a
  rate >= 0.3x the reference's. Every 202 is checked against the ledger afterwards.
- ``runs_page``: ``GET /api/runs`` (the first page, a page by workflow, a page by reason,
  and a page deep in the list through ``before``) with 100,000 runs in the ledger, against
  ``GET /healthz`` on the same server (which also reads the ledger) measured alternately.
  Target: p95 <= 5x the p95 of ``/healthz``. The UI's ``/runs`` page is measured the same
  way when the server has it.

The load generator is a small HTTP/1.1 keep-alive client on asyncio (``CONNECTIONS``
connections, each sending its next request when the answer arrives), in its own process.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REPORT = HERE / "RESULTS.md"
SECTION = "<!-- bench/serve.py: everything below is written by it -->"

CONNECTIONS = 16
SECONDS = 4.0  # of each measured round
ROUNDS = 3  # alternating contender and reference
LEDGER_RUNS = 100_000
INTAKE_RATIO_TARGET = 0.3
RUNS_PAGE_P95_TARGET = 5.0

HELLO = """
import socket, sys, uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(2048)
print(f"statefn serve: open http://127.0.0.1:{listener.getsockname()[1]}/", flush=True)
config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
uvicorn.Server(config).run(sockets=[listener])
"""

INTAKE_FLOW = {
    "workflow": {
        "name": "intake",
        "steps": [
            {"id": "open", "webhook": True, "next": "keep"},
            {"id": "keep", "expression": "fn(lambda s: s)"},
        ],
    }
}


# -- the load generator ---------------------------------------------------------------------


async def _connection(
    port: int, request: bytes, until: float, latencies: list[float], statuses: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    length = re.compile(rb"content-length: *(\d+)", re.IGNORECASE)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            found = length.search(head)
            await reader.readexactly(int(found[1]) if found else 0)
            latencies.append(time.perf_counter() - started)
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


def load(port: int, request: bytes, seconds: float = SECONDS) -> dict[str, Any]:
    """Requests per second and latency percentiles of ``request`` sent for ``seconds``."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def main() -> float:
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(
            *(_connection(port, request, until, latencies, statuses) for _ in range(CONNECTIONS))
        )
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    ordered = sorted(latencies)
    return {
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p95_ms": ordered[int(len(ordered) * 0.95)] * 1000,
        "requests": len(latencies),
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
    }


def http_request(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body or method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


# -- servers --------------------------------------------------------------------------------


class Process:
    """A server process that prints ``... open http://HOST:PORT/`` once it listens."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        self.log = (cwd / f"server-{uuid.uuid4().hex[:6]}.log").open("wb")
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=cwd,
            env={**os.environ, "STATEFN_TOKEN": ""},
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if match is None:
            self.stop()
            raise SystemExit(f"the server did not start: {line!r}; see {self.log.name}")
        self.port = int(match[1])

    def stop(self, timeout: float = 600) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.log.close()


def serve(project: Path, *args: str) -> Process:
    command = [sys.executable, "-m", "statefn", "serve", str(project), "--port", "0", *args]
    return Process(command, project.parent)


def alternate(
    contender: tuple[int, bytes], reference: tuple[int, bytes]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """``ROUNDS`` rounds of each, alternating, after a short untimed warm-up of each; the
    rounds of each, and the contender's warm-up."""
    warm_up = load(*contender, seconds=0.5)
    load(*reference, seconds=0.5)
    ours, theirs = [], []
    for _ in range(ROUNDS):
        ours.append(load(*contender))
        theirs.append(load(*reference))
    return ours, theirs, warm_up


def median(rounds: list[dict[str, Any]], key: str) -> float:
    return statistics.median(round_[key] for round_ in rounds)


# -- workloads ------------------------------------------------------------------------------


def webhook_intake(scratch: Path) -> dict[str, Any]:
    project = scratch / "intake"
    project.mkdir()
    (project / "intake.json").write_text(json.dumps(INTAKE_FLOW))
    hello = Process([sys.executable, "-c", HELLO], scratch)
    server = serve(project, "--workers", "2")
    try:
        ours, theirs, warm_up = alternate(
            (server.port, http_request("POST", "/hooks/intake/open", b'{"order": 1}')),
            (hello.port, http_request("GET", "/")),
        )
    finally:
        hello.stop()
        server.stop()  # waits for every run taken to finish
    accepted = sum(round_["statuses"].get("202", 0) for round_ in [*ours, warm_up])
    connection = sqlite3.connect(project / ".statefn" / "runs.db")
    recorded, unfinished = connection.execute(
        "SELECT COUNT(*), SUM(status IN ('queued', 'started')) FROM runs"
    ).fetchone()
    connection.close()
    # Every 202 is a run in the ledger, and the ledger holds no other run.
    assert recorded == accepted, f"{accepted} runs accepted, {recorded} recorded"
    ratio = median(ours, "requests_per_s") / median(theirs, "requests_per_s")
    return {
        "webhook": ours,
        "hello_world": theirs,
        "webhook_requests_per_s": median(ours, "requests_per_s"),
        "webhook_p95_ms": median(ours, "p95_ms"),
        "hello_requests_per_s": median(theirs, "requests_per_s"),
        "hello_p95_ms": median(theirs, "p95_ms"),
        "ratio": ratio,
        "target": f"ratio >= {INTAKE_RATIO_TARGET}",
        "met": ratio >= INTAKE_RATIO_TARGET,
        "runs_recorded": recorded,
        "runs_unfinished_after_stop": unfinished or 0,
    }


def fill_ledger(path: Path) -> list[str]:
    """``LEDGER_RUNS`` finished runs of three workflows, one a second; their ids, newest
    first. Written straight into the ledger's tables in one transaction (the schema of
    statefn.ledger), since recording them through an engine would take an hour."""
    from statefn import ledger

    ledger.open(f"sqlite:///{path}").close()  # the schema
    start = datetime(2026, 1, 1, tzinfo=UTC)
    reasons = ("success", "success", "success", "fail", "crash")
    rows = []
    for number in range(LEDGER_RUNS):
        at = (start + timedelta(seconds=number)).isoformat(timespec="microseconds")
        rows.append((str(uuid.UUID(int=number + 1)), f"flow-{number % 3}", 1,
                     reasons[number % len(reasons)], at, at, at, 12.5))  # fmt: skip
    connection = sqlite3.connect(path)
    with connection:
        connection.executemany(
            "INSERT INTO runs (run_id, workflow, attempt, status, submitted_at, started_at, "
            "finished_at, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    connection.close()
    return [row[0] for row in reversed(rows)]


def runs_page(scratch: Path) -> dict[str, Any]:
    project = scratch / "runs"
    project.mkdir()
    (project / "flow.json").write_text(json.dumps(INTAKE_FLOW))
    ids = fill_ledger(scratch / "runs.db")
    server = serve(project, "--ledger", f"sqlite:///{scratch / 'runs.db'}")
    health = (server.port, http_request("GET", "/healthz"))
    pages = {
        "first page": "/api/runs",
        "by workflow": "/api/runs?workflow=flow-1",
        "by reason": "/api/runs?reason=crash",
        "deep, with before": f"/api/runs?before={ids[LEDGER_RUNS // 2]}",
    }
    results: dict[str, Any] = {}
    try:
        if load(server.port, http_request("GET", "/runs"), seconds=0.2)["statuses"].get("200"):
            pages["UI /runs page"] = "/runs"
        for name, path in pages.items():
            ours, theirs, _ = alternate((server.port, http_request("GET", path)), health)
            assert set(ours[0]["statuses"]) == {"200"}, (name, ours[0]["statuses"])
            ratio = median(ours, "p95_ms") / median(theirs, "p95_ms")
            results[name] = {
                "path": path,
                "p95_ms": median(ours, "p95_ms"),
                "p50_ms": median(ours, "p50_ms"),
                "requests_per_s": median(ours, "requests_per_s"),
                "healthz_p95_ms": median(theirs, "p95_ms"),
                "ratio": ratio,
                "target": f"p95 ratio <= {RUNS_PAGE_P95_TARGET}",
                "met": ratio <= RUNS_PAGE_P95_TARGET,
                "rounds": ours,
                "healthz_rounds": theirs,
            }
    finally:
        server.stop()
    return results


# -- the report -----------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    intake = results["webhook_intake"]
    lines = [
        SECTION,
        "",
        "## statefn serve (`bench/serve.py`)",
        "",
        f"Run {results['date']} on {results['machine']['cpus']} cores, Python "
        f"{results['machine']['python']}, load average before {results['load_before']}. "
        f"{CONNECTIONS} keep-alive connections from a Python load generator on the same "
        f"machine, {ROUNDS} rounds of {SECONDS:g} s per side, alternating; medians of the "
        "rounds. Full figures in `bench/results/serve.json`.",
        "",
        "| workload | statefn serve | reference | ratio | target | met |",
        "|---|---|---|---|---|---|",
        f"| webhook intake (202 once recorded) | {intake['webhook_requests_per_s']:,.0f} req/s, "
        f"p95 {intake['webhook_p95_ms']:.1f} ms | ASGI hello-world: "
        f"{intake['hello_requests_per_s']:,.0f} req/s, p95 {intake['hello_p95_ms']:.1f} ms | "
        f"{intake['ratio']:.2f} | {intake['target']} | {'yes' if intake['met'] else '**no**'} |",
    ]
    for name, page in results["runs_page"].items():
        lines.append(
            f"| `GET {page['path']}` ({name}), {LEDGER_RUNS:,} runs | p95 {page['p95_ms']:.1f} ms "
            f"({page['requests_per_s']:,.0f} req/s) | `GET /healthz`: p95 "
            f"{page['healthz_p95_ms']:.1f} ms | {page['ratio']:.2f} | {page['target']} | "
            f"{'yes' if page['met'] else '**no**'} |"
        )
    lines += [
        "",
        f"Every 202 of the intake rounds (and of the warm-up) was a run in the ledger "
        f"afterwards, and the ledger held no other: {intake['runs_recorded']:,} runs, "
        f"{intake['runs_unfinished_after_stop']} left unfinished after the server stopped.",
        "",
    ]
    return "\n".join(lines)


def write_report(section: str) -> None:
    text = REPORT.read_text(encoding="utf-8") if REPORT.exists() else ""
    kept = text.split(SECTION, 1)[0].rstrip("\n")
    REPORT.write_text((kept + "\n\n" if kept else "") + section, encoding="utf-8")


def main() -> None:
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "load_before": ", ".join(f"{value:.2f}" for value in os.getloadavg()),
    }
    with tempfile.TemporaryDirectory(prefix="statefn-bench-serve-") as scratch:
        results["webhook_intake"] = webhook_intake(Path(scratch))
        print(json.dumps({k: v for k, v in results["webhook_intake"].items()
                          if not isinstance(v, list)}, indent=2), flush=True)  # fmt: skip
        results["runs_page"] = runs_page(Path(scratch))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
