"""Benchmarks of the runtime on this machine (issues: core runtime, job language).

    .venv/bin/python bench/runtime.py            # all workloads, results to bench/results/
    .venv/bin/python bench/runtime.py ops chain  # some of them

Each workload runs in a fresh process (so peak memory is its own) several times; the
median is reported. Figures side by side with the OpenFn runtime come from bench/compare;
this script adds what has no OpenFn counterpart (compiling against CPython, steps given as
functions, time inside a step).
"""

from __future__ import annotations

import argparse
import ast
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compare_lib.statefn_side import records  # the same big-state records as bench/compare

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REPEATS = 5


def timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def chain(count: int, expression: Callable[[int], Any]) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"id": f"s{i}", "expression": expression(i), "next": f"s{i + 1}"} for i in range(count)
    ]
    del steps[-1]["next"]
    return {"workflow": {"steps": steps}}


def identity(state: dict[str, Any]) -> dict[str, Any]:
    return state


def workload_ops() -> dict[str, float]:
    """One step of 10,000 trivial operations given as functions."""
    import statefn

    operations = [identity] * 10_000
    statefn.run(operations)
    seconds = timed(lambda: statefn.run(operations))
    return {"us_per_operation": seconds * 1e6 / 10_000}


def workload_chain() -> dict[str, float]:
    """200 chained steps of one trivial operation: as functions, and as job source."""
    import statefn

    functions = chain(200, lambda i: [identity])
    source = chain(200, lambda i: f"fn(lambda state: {{**state, 'n': {i}}})")
    statefn.run(functions)
    as_functions = timed(lambda: statefn.run(functions))
    as_source = timed(lambda: statefn.run(source))
    return {
        "ms_per_step_functions": as_functions * 1000 / 200,
        "ms_per_step_source": as_source * 1000 / 200,
    }


def workload_big_state() -> dict[str, float]:
    """A ~17 MB state through 10 chained steps, each touching one record."""
    import orjson

    import statefn

    state = {"data": {"records": records(100_000)}}
    size = len(orjson.dumps(state))

    def touch(i: int) -> list[Callable[..., Any]]:
        def operation(state: dict[str, Any]) -> dict[str, Any]:
            state["data"]["records"][i * 997]["score"] += 1
            return state

        return [operation]

    plan = chain(10, touch)
    durations: list[float] = []

    def on_event(name: str, payload: dict[str, Any]) -> None:
        if name == "job-complete":
            durations.append(payload["duration_ms"])

    total = timed(lambda: statefn.run(plan, state))
    # The same run again, listening to events: each job-complete carries a copy of state.
    statefn.run(plan, state, on_event=on_event)
    return {
        "state_mb": size / 1e6,
        "ms_per_step": total * 1000 / 10,
        "ms_per_step_in_step": statistics.median(durations),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


TRANSFORM = """
def build(state):
    rows = []
    for i in range(300_000):
        rows.append({"id": i, "name": "n" + str(i), "even": i % 2 == 0})
    return {**state, "data": {"count": len(rows)}}
"""


def workload_transform() -> dict[str, float]:
    """A loop building 300,000 dicts: as job source, and as a plain Python operation."""
    import statefn

    namespace: dict[str, Any] = {}
    exec(TRANSFORM, namespace)
    plain = [namespace["build"]]
    job = TRANSFORM.replace("def build", "@fn\ndef build")
    statefn.run(plain)
    statefn.run(job)
    as_plain = statistics.median(timed(lambda: statefn.run(plain)) for _ in range(3))
    as_job = statistics.median(timed(lambda: statefn.run(job)) for _ in range(3))
    return {"ms_plain": as_plain * 1000, "ms_job": as_job * 1000, "ratio": as_job / as_plain}


def workload_compile() -> dict[str, float]:
    """Compiling a 1,000-operation job against CPython's own compile(ast.parse(src))."""
    from statefn import _compile

    lines = [
        f"fn(lambda state: {{**state, 'k{i}': state['data'].get('x', {i})}})" for i in range(1000)
    ]
    source = "\n".join(lines)

    def ours() -> None:
        # The compile cache bypassed: the real cost of a first compile.
        _compile._compile.__wrapped__(source, (), "job")

    def cpython() -> None:
        compile(ast.parse(source), "<job>", "exec")

    ours_s = statistics.median(timed(ours) for _ in range(3))
    cpython_s = statistics.median(timed(cpython) for _ in range(3))
    return {
        "ms_statefn": ours_s * 1000,
        "ms_cpython": cpython_s * 1000,
        "ratio": ours_s / cpython_s,
    }


WORKLOADS: dict[str, Callable[[], dict[str, float]]] = {
    "ops": workload_ops,
    "chain": workload_chain,
    "big_state": workload_big_state,
    "transform": workload_transform,
    "compile": workload_compile,
}


def run_in_child(name: str) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", name], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, float] = json.loads(output)
    return result


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(run[key] for run in runs), 4) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "workloads",
        nargs="*",
        metavar="WORKLOAD",
        help=f"any of: {', '.join(WORKLOADS)} (default: all)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(WORKLOADS[args.child]()))
        return
    chosen = args.workloads or list(WORKLOADS)
    results: dict[str, Any] = {}
    for name in chosen:
        runs = []
        for repeat in range(args.repeats):
            print(f"{name}: run {repeat + 1} of {args.repeats}", file=sys.stderr, flush=True)
            runs.append(run_in_child(name))
        results[name] = median_of(runs)
        print(f"{name}: {results[name]}", file=sys.stderr)
    RESULTS.mkdir(exist_ok=True)
    report = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "repeats": args.repeats,
        "results": results,
    }
    target = RESULTS / "runtime.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
