"""The statefn side of bench/compare's engine workloads: one workload per process.

    .venv/bin/python bench/compare_lib/engine_side.py WORKLOAD '{"runs": ...}'

prints one JSON object of measurements on stdout, or exits 1 naming the wrong result.
Each workload starts a `statefn.engine.Engine` (2 workers unless it says otherwise), warms
it with a few runs, then times the work and checks every outcome. Its twin in
openfn_engine_side.mjs drives `@openfn/engine-multi` through the same work.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

import statefn
from statefn._state import decode
from statefn.engine import Engine, RunOutcome
from statefn.ledger import open as open_ledger

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compare_lib.statefn_side import WrongResult, expect, records

__all__ = ["WORKLOADS"]

State = dict[str, Any]
WORKERS = 2
WARM_UP_RUNS = 10
TRIVIAL_JOB = "fn(lambda state: {**state, 'data': {'ok': True}})"
TRIVIAL_RESULT = {"data": {"ok": True}}
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


def trivial_plan() -> State:
    return {"workflow": {"steps": [{"id": "only", "expression": TRIVIAL_JOB}]}}


def check_trivial(outcome: RunOutcome) -> None:
    expect(
        outcome.reason == "success" and outcome.state == TRIVIAL_RESULT,
        f"expected success with {TRIVIAL_RESULT!r}, got {outcome.reason} {outcome.state!r} "
        f"{outcome.error!r}",
    )


def warm_up(engine: Engine, plan: State) -> None:
    for _ in range(WARM_UP_RUNS):
        engine.submit(plan).result()


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value at or above `fraction` of them."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def milliseconds(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return (time.perf_counter() - started) * 1000, result


def latency(runs: int) -> dict[str, float]:
    """`runs` trivial runs one after another, submit to result, each followed by an
    in-process `statefn.run` of the same plan (the cost of isolation, measured alongside)."""
    plan = trivial_plan()
    isolated: list[float] = []
    local: list[float] = []
    with Engine(workers=WORKERS) as engine:
        warm_up(engine, plan)
        statefn.run(plan)
        for _ in range(runs):
            elapsed, outcome = milliseconds(lambda: engine.submit(plan).result())
            check_trivial(outcome)
            isolated.append(elapsed)
            elapsed, result = milliseconds(lambda: statefn.run(plan))
            expect(result == TRIVIAL_RESULT, f"in-process run gave {result!r}")
            local.append(elapsed)
    p50, p95 = percentile(isolated, 0.5), percentile(isolated, 0.95)
    local_p50, local_p95 = percentile(local, 0.5), percentile(local, 0.95)
    return {
        "p50_ms": p50,
        "p95_ms": p95,
        "in_process_p50_ms": local_p50,
        "in_process_p95_ms": local_p95,
        "isolation_p50_ms": p50 - local_p50,
        "isolation_p95_ms": p95 - local_p95,
    }


def throughput(runs: int) -> dict[str, float]:
    """`runs` trivial runs submitted at once; runs per second until the last outcome."""
    plan = trivial_plan()
    with Engine(workers=WORKERS) as engine:
        warm_up(engine, plan)
        started = time.perf_counter()
        handles = [engine.submit(plan) for _ in range(runs)]
        outcomes = [handle.result() for handle in handles]
        elapsed = time.perf_counter() - started
    for outcome in outcomes:
        check_trivial(outcome)
    return {"runs_per_s": runs / elapsed}


SPIN_JOB = "@fn\ndef spin(state):\n    while True:\n        pass\n"


def timeout(limit_ms: int, runs: int) -> dict[str, float]:
    """A job that loops forever under `run_timeout_ms=limit_ms`: how long past the limit
    its outcome arrives (from submit, so the hand-over to a worker counts against us)."""
    plan = {"workflow": {"steps": [{"id": "spin", "expression": SPIN_JOB}]}}
    late: list[float] = []
    with Engine(workers=WORKERS, run_timeout_ms=limit_ms) as engine:
        warm_up(engine, trivial_plan())
        for _ in range(runs):
            elapsed, outcome = milliseconds(lambda: engine.submit(plan).result())
            error = outcome.error or {}
            expect(
                outcome.reason == "kill" and error.get("name") == "TimeoutError",
                f"expected a TimeoutError kill, got {outcome.reason} {error!r}",
            )
            late.append(elapsed - limit_ms)
    return {"past_limit_ms": statistics.median(late), "worst_past_limit_ms": max(late)}


# Allocates 1 MB, then does some arithmetic, again and again: memory grows steadily.
HOG_JOB = """
@fn
def hog(state):
    chunks = []
    while True:
        chunks.append("x" * 1_000_000)
        total = 0
        for i in range(20_000):
            total += i
"""


def children_of(pid: int) -> list[int]:
    """The processes any thread of `pid` started (the engine starts its template from its
    supervisor thread)."""
    found: list[int] = []
    for task in os.scandir(f"/proc/{pid}/task"):
        try:
            with open(f"{task.path}/children", "rb") as children:
                found.extend(int(child) for child in children.read().split())
        except OSError:
            continue
    return found


def resident(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class Crossing:
    """Samples the resident memory of the engine's workers (the children of its template,
    a child of this process) every few milliseconds while a run hogs memory, and tells
    when the hog crossed a limit."""

    def __init__(self, every_s: float) -> None:
        self.every = every_s
        self.samples: list[tuple[float, int]] = []  # (time, the largest worker's RSS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Crossing:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            sizes = [resident(w) for template in children_of(me) for w in children_of(template)]
            if sizes:
                self.samples.append((time.perf_counter(), max(sizes)))
            time.sleep(self.every)

    def crossed(self, limit: int) -> tuple[float, bool]:
        """When the hog's RSS crossed `limit`, and whether a sample over it was seen:
        between the last sample under it and the first over it (linearly), or else, when
        the worker was killed before a sample saw it over, extrapolated from its growth
        over the last samples. Samples after the hog's peak (the other worker's) are left
        out."""
        peak = max(range(len(self.samples)), key=lambda i: self.samples[i][1], default=-1)
        rising = self.samples[: peak + 1]
        first_over = next((i for i, (_, size) in enumerate(rising) if size > limit), None)
        if first_over == 0 or len(rising) < 2:
            raise WrongResult("too few samples of the worker's memory under the limit")
        if first_over is not None:
            (t0, s0), (t1, s1) = rising[first_over - 1], rising[first_over]
            return t0 + (t1 - t0) * (limit - s0) / (s1 - s0), True
        (t1, s1) = rising[-1]
        (t0, s0) = next((t, size) for t, size in rising if t >= t1 - 0.2)
        if t1 <= t0 or s1 <= s0:
            raise WrongResult("too few samples of the worker's memory to tell its growth")
        return t1 + (limit - s1) * (t1 - t0) / (s1 - s0), False


def oom(limit_mb: int, runs: int) -> dict[str, float]:
    """A job that allocates steadily under `memory_limit_mb=limit_mb`: the time from its
    worker's resident memory crossing the limit (sampled every 5 ms from outside) to the
    `OOMError` outcome, and the highest resident memory seen."""
    plan = {"workflow": {"steps": [{"id": "hog", "expression": HOG_JOB}]}}
    after: list[float] = []
    peaks: list[float] = []
    seen = 0
    with Engine(workers=WORKERS, memory_limit_mb=limit_mb, run_timeout_ms=60_000) as engine:
        warm_up(engine, trivial_plan())
        for _ in range(runs):
            with Crossing(every_s=0.005) as crossing:
                outcome = engine.submit(plan).result()
                ended = time.perf_counter()
            error = outcome.error or {}
            expect(
                outcome.reason == "kill" and error.get("name") == "OOMError",
                f"expected an OOMError kill, got {outcome.reason} {error!r}",
            )
            crossed, sampled = crossing.crossed(limit_mb * MB)
            seen += sampled
            after.append((ended - crossed) * 1000)
            peaks.append(max(size for _, size in crossing.samples) / MB)
    return {
        "after_crossing_ms": statistics.median(after),
        "worst_after_crossing_ms": max(after),
        "peak_resident_mb": max(peaks),
        "runs_seen_over_the_limit": seen,
    }


TWO_STEPS = {
    "workflow": {
        "steps": [
            {"id": "first", "expression": "fn(lambda state: {**state, 'n': 1})", "next": "second"},
            {"id": "second", "expression": "fn(lambda state: {**state, 'n': state['n'] + 1})"},
        ]
    }
}


def ledger(runs: int) -> dict[str, float]:
    """`runs` two-step runs one after another on an engine with a SQLite ledger, each
    followed by the same run on an engine without one (both warm, in this process)."""

    def timed(engine: Engine) -> float:
        elapsed, outcome = milliseconds(lambda: engine.submit(TWO_STEPS, {"data": {}}).result())
        expect(
            outcome.reason == "success" and outcome.state == {"data": {}, "n": 2},
            f"expected n == 2, got {outcome.reason} {outcome.state!r}",
        )
        return elapsed

    with tempfile.TemporaryDirectory(prefix="statefn-bench-ledger-") as scratch:
        url = f"sqlite:///{scratch}/runs.db"
        recorded, bare = [], []
        with Engine(workers=WORKERS, ledger=url) as on_ledger, Engine(workers=WORKERS) as plain:
            warm_up(on_ledger, TWO_STEPS)
            warm_up(plain, TWO_STEPS)
            for _ in range(runs):
                recorded.append(timed(on_ledger))
                bare.append(timed(plain))
        with open_ledger(url) as opened:
            found = opened.runs(reason="success", limit=runs + WARM_UP_RUNS + 1)
        expect(len(found) == runs + WARM_UP_RUNS, f"{len(found)} runs recorded")
    with_ledger, without = statistics.median(recorded), statistics.median(bare)
    return {
        "ms_per_run_on_ledger": with_ledger,
        "ms_per_run_without": without,
        "ledger_ms_per_run": with_ledger - without,
    }


TOUCH_JOB = """
@fn
def touch(state):
    state["data"]["records"][INDEX]["score"] += 1
    return state
"""


def big_state_plan(steps: int, stride: int) -> State:
    return {
        "workflow": {
            "steps": [
                {
                    "id": f"s{i}",
                    "expression": TOUCH_JOB.replace("INDEX", str(i * stride)),
                    **({"next": f"s{i + 1}"} if i + 1 < steps else {}),
                }
                for i in range(steps)
            ]
        }
    }


def check_touched(state: State, result: Any, steps: int, stride: int) -> None:
    rows = result["data"]["records"] if isinstance(result, dict) else []
    expect(len(rows) == len(state["data"]["records"]), "records lost")
    expect("errors" not in result, f"errors in state: {str(result.get('errors'))[:300]}")
    for i in range(steps):
        before = state["data"]["records"][i * stride]["score"]
        expect(rows[i * stride]["score"] == before + 1, f"record {i * stride} not touched")
    expect(rows[1] == state["data"]["records"][1], "an untouched record changed")


def consumer_decode_ms(blob: bytes, times: int = 3) -> float:
    """The median ms of decoding ``blob`` as ``handle.events()`` decodes an event's state
    (``statefn._state.decode``), each copy let go before the next: a floor under the timed
    run, whose consumer decodes steps + 1 such states (each job-complete's and
    workflow-complete's) one after another in its own thread."""
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        decoded = decode(blob)
        spent.append((time.perf_counter() - started) * 1000)
        del decoded
    return statistics.median(spent)


def big_state(
    count: int, steps: int, payload_limit_mb: float, small_limit_mb: float
) -> dict[str, float]:
    """`count` records through `steps` chained steps on the engine, every event read
    through `handle.events()` with its state decoded: timed with `payload_limit_mb` (so
    that every event carries the whole state). Then once more, untimed, at a payload limit
    the state is over (`small_limit_mb`, the engine's default in the benchmark): every
    event must withhold the state (`state_withheld`) and the outcome must carry it whole."""
    state = {"data": {"records": records(count)}}
    size = len(orjson.dumps(state))
    stride = count // steps
    plan = big_state_plan(steps, stride)
    with Engine(workers=WORKERS, payload_limit_mb=payload_limit_mb) as engine:
        warm_up(engine, trivial_plan())
        started = time.perf_counter()
        handle = engine.submit(plan, state)
        events = list(handle.events())
        outcome = handle.result()
        elapsed = time.perf_counter() - started
    check_touched(state, outcome.state, steps, stride)
    completes = [payload for name, payload in events if name == "job-complete"]
    expect(len(completes) == steps, f"{len(completes)} job-complete events, not {steps}")
    expect(
        all(payload["state"]["data"]["records"][1] == state["data"]["records"][1]
            for payload in completes),
        "an event's state is not the step's state",
    )  # fmt: skip
    decode_ms = consumer_decode_ms(orjson.dumps(completes[-1]["state"]))
    del events, completes
    with Engine(workers=WORKERS, payload_limit_mb=small_limit_mb) as engine:
        handle = engine.submit(plan, state)
        events = list(handle.events())
        outcome = handle.result()
    check_touched(state, outcome.state, steps, stride)
    withheld = [
        payload
        for name, payload in events
        if name == "job-complete"
        and payload["state"] is None
        and payload.get("state_withheld") == "too large"
    ]
    expect(len(withheld) == steps, f"{len(withheld)} of {steps} job-complete states withheld")
    return {
        "state_mb": size / 1e6,
        "ms_per_step": elapsed * 1000 / steps,
        "decode_ms": decode_ms,
        "decodes_ms_per_step": decode_ms * (steps + 1) / steps,
        "events": len(events),
        "withheld_at_small_limit": len(withheld),
    }


def parent_memory(runs: int, every: int, batch: int) -> dict[str, float]:
    """`runs` trivial runs, `batch` submitted at a time; this process's resident memory
    (the engine's parent) after the warm-up and after every `every` runs."""
    plan = trivial_plan()
    me = os.getpid()
    curve: dict[str, float] = {}
    with Engine(workers=WORKERS) as engine:
        warm_up(engine, plan)
        curve["rss_mb_at_0"] = resident(me) / MB
        done = 0
        while done < runs:
            handles = [engine.submit(plan) for _ in range(min(batch, runs - done))]
            for handle in handles:
                check_trivial(handle.result())
            done += len(handles)
            if done % every == 0:
                curve[f"rss_mb_at_{done}"] = resident(me) / MB
    first = curve[f"rss_mb_at_{every}"]
    return {"rss_growth_mb": curve[f"rss_mb_at_{runs}"] - first, **curve}


WORKLOADS: dict[str, Callable[..., dict[str, float]]] = {
    "latency": latency,
    "throughput": throughput,
    "timeout": timeout,
    "oom": oom,
    "ledger": ledger,
    "big_state": big_state,
    "parent_memory": parent_memory,
}


def main() -> None:
    name, params = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    try:
        measured = WORKLOADS[name](**params)
    except WrongResult as wrong:
        sys.exit(f"statefn engine {name}: wrong result: {wrong}")
    print(json.dumps(measured))


if __name__ == "__main__":
    main()
