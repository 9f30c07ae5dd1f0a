"""The statefn side of bench/compare: one workload per process.

    .venv/bin/python bench/compare_lib/statefn_side.py WORKLOAD '{"size": ...}'

prints one JSON object of measurements on stdout, or exits 1 naming the wrong result.
Each workload builds its input, runs it (after a warm-up where the workload says so), checks
the final state and times only the run. Its twin in openfn_side.mjs does the same work.
The module imports statefn only inside the workloads, so the cold-start workload pays for it,
and what one workload alone needs (statistics) there too, so that it pays for nothing else.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["WORKLOADS", "WrongResult", "records"]

State = dict[str, Any]
Operation = Callable[[State], State]


class WrongResult(Exception):
    """A workload's final state is not what the work should have produced."""


def expect(condition: bool, message: str) -> None:
    # Not `assert`: the check must hold under `python -O` too.
    if not condition:
        raise WrongResult(message)


def seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def records(count: int) -> list[State]:
    """The big-state records: id, name, email, 5 tags, active, score (~17 MB for 100,000)."""
    return [
        {
            "id": i,
            "name": f"Patient number {i:06d}",
            "email": f"patient.{i:06d}@clinic.example.org",
            "tags": ["outpatient", "follow-up", "district-7", "insured", "adult"],
            "active": i % 3 != 0,
            "score": (i * 731) % 100_000 / 1000,
        }
        for i in range(count)
    ]


def count_up(state: State) -> State:
    state["n"] += 1
    return state


def operations(count: int) -> dict[str, float]:
    """One step of `count` trivial operations given as functions (each adds 1 to n)."""
    import statefn

    plan = [count_up] * count
    statefn.run(plan, {"n": 0})
    result: State = {}

    def once() -> None:
        nonlocal result
        result = statefn.run(plan, {"n": 0})

    elapsed = seconds(once)
    expect(result.get("n") == count and "errors" not in result, f"n != {count}: {result!r}")
    return {"us_per_operation": elapsed * 1e6 / count}


def chain_plan(steps: int, offset: int) -> State:
    # Each job's source differs, so no step finds its job already compiled.
    return {
        "workflow": {
            "steps": [
                {
                    "id": f"s{i}",
                    "expression": f"fn(lambda state: {{**state, 'n': {offset + i}}})",
                    **({"next": f"s{i + 1}"} if i + 1 < steps else {}),
                }
                for i in range(steps)
            ]
        }
    }


def chain(steps: int) -> dict[str, float]:
    """`steps` chained steps, each one job given as source (compiled as part of the run)."""
    import statefn

    statefn.run(chain_plan(steps, offset=steps), {"data": {"seed": 1}})
    plan = chain_plan(steps, offset=0)
    result: State = {}

    def once() -> None:
        nonlocal result
        result = statefn.run(plan, {"data": {"seed": 1}})

    elapsed = seconds(once)
    expected = {"data": {"seed": 1}, "n": steps - 1}
    expect(result == expected, f"expected {expected!r}, got {result!r}")
    return {"ms_per_step": elapsed * 1000 / steps}


def mark(branch: int) -> Operation:
    def operation(state: State) -> State:
        state["branch"] = branch
        return state

    return operation


def branching(branches: int, runs: int) -> dict[str, float]:
    """One step fanning out to `branches` steps through condition strings; half are taken."""
    import statistics

    import statefn

    edges = {f"b{k}": f"state['data']['x'] == {1 if k % 2 == 0 else 2}" for k in range(branches)}
    steps: list[State] = [{"id": "root", "expression": [count_up], "next": edges}]
    steps += [{"id": f"b{k}", "expression": [mark(k)]} for k in range(branches)]
    plan = {"workflow": {"steps": steps}}
    expected = {f"b{k}": {"data": {"x": 1}, "n": 1, "branch": k} for k in range(0, branches, 2)}
    timings = []
    for attempt in range(runs + 1):
        started = time.perf_counter()
        result = statefn.run(plan, {"data": {"x": 1}, "n": 0})
        elapsed = time.perf_counter() - started
        expect(result == expected, f"expected {len(expected)} even leaves, got {result!r}")
        if attempt:  # the first run warms up
            timings.append(elapsed)
    return {"ms_per_run": statistics.median(timings) * 1000}


def touch(index: int) -> Operation:
    def operation(state: State) -> State:
        state["data"]["records"][index]["score"] += 1
        return state

    return operation


def big_state(count: int, steps: int) -> dict[str, float]:
    """A state of `count` records through `steps` chained steps, each touching one record."""
    import orjson

    import statefn

    state = {"data": {"records": records(count)}}
    size = len(orjson.dumps(state))
    stride = count // steps
    plan = {
        "workflow": {
            "steps": [
                {
                    "id": f"s{i}",
                    "expression": [touch(i * stride)],
                    **({"next": f"s{i + 1}"} if i + 1 < steps else {}),
                }
                for i in range(steps)
            ]
        }
    }
    result: State = {}

    def once() -> None:
        nonlocal result
        result = statefn.run(plan, state)

    elapsed = seconds(once)
    rows = result["data"]["records"]
    expect(len(rows) == count and "errors" not in result, "records lost or errors in state")
    for i in range(steps):
        before = state["data"]["records"][i * stride]["score"]
        expect(rows[i * stride]["score"] == before + 1, f"record {i * stride} not touched")
    expect(rows[1] == state["data"]["records"][1], "an untouched record changed")
    return {"state_mb": size / 1e6, "ms_per_step": elapsed * 1000 / steps}


def touch_job(index: int) -> str:
    """Job source that adds 1 to the score of record ``index``."""
    return (
        "def touch(state):\n"
        f"    state['data']['records'][{index}]['score'] += 1\n"
        "    return state\n"
        "fn(touch)\n"
    )


def run_files(count: int, steps: int, run: Callable[[Path, Path, Path], None]) -> float:
    """ms a step of ``run(plan, state, out)`` over a big state read from and written to files:
    a run of ``steps`` steps less a run of one, so reading, writing and set-up cancel out."""
    import tempfile

    stride = count // steps
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        state_file, out = folder / "state.json", folder / "out.json"
        state_file.write_text(json.dumps({"data": {"records": records(count)}}))
        elapsed = {}
        # The first length is an untimed warm-up: imports and compiled jobs are then ready.
        for length in (steps, 1, steps):
            plan = folder / f"plan{length}.json"
            chained = [
                {"id": f"s{i}", "expression": touch_job(i * stride), "next": f"s{i + 1}"}
                for i in range(length)
            ]
            del chained[-1]["next"]
            plan.write_text(json.dumps({"workflow": {"steps": chained}}))
            elapsed[length] = seconds(lambda: run(plan, state_file, out))  # noqa: B023
            rows = json.loads(out.read_text())["data"]["records"]
            before = records(count)
            expect(len(rows) == count, "records lost")
            for i in range(length):
                got, wanted = rows[i * stride]["score"], before[i * stride]["score"] + 1
                expect(abs(got - wanted) < 1e-9, f"record {i * stride} not touched")
            expect(rows[1] == before[1] or stride == 1, "an untouched record changed")
    return (elapsed[steps] - elapsed[1]) * 1000 / (steps - 1)


def cli_big_state(count: int, steps: int) -> dict[str, float]:
    """``statefn run plan.json -s state.json -o out.json`` (the command's code, in-process)."""
    from statefn.cli import main

    def run(plan: Path, state: Path, out: Path) -> None:
        code = main(["run", str(plan), "-s", str(state), "-o", str(out), "--log", "none"])
        expect(code == 0, f"statefn run exited with {code}")

    return {"ms_per_step": run_files(count, steps, run)}


def api_big_state(count: int, steps: int) -> dict[str, float]:
    """The same files through ``statefn.run`` with no listener."""
    import orjson

    import statefn

    def run(plan: Path, state: Path, out: Path) -> None:
        result = statefn.run(orjson.loads(plan.read_bytes()), orjson.loads(state.read_bytes()))
        out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))

    return {"ms_per_step": run_files(count, steps, run)}


def cold_start() -> dict[str, float]:
    """Import the runtime and run a one-step workflow given as job source."""
    import statefn

    plan = {"workflow": {"steps": [{"id": "only", "expression": COLD_JOB}]}}
    result = statefn.run(plan)
    expect(result == {"data": {"ok": True}}, f"expected ok, got {result!r}")
    return {}


COLD_JOB = "fn(lambda state: {**state, 'data': {'ok': True}})"

TRANSFORM = """
def build(state):
    rows = []
    for i in range(COUNT):
        rows.append({"id": i, "name": "n" + str(i), "even": i % 2 == 0})
    return {**state, "data": {"count": len(rows), "last": rows[-1]}}
"""


def transform(count: int, as_job: bool) -> dict[str, float]:
    """A loop building `count` dicts: as statefn job source, or as a plain Python operation."""
    import statefn

    source = TRANSFORM.replace("COUNT", str(count))
    plan: Any
    if as_job:
        plan = source.replace("def build", "@fn\ndef build")
    else:
        namespace: State = {}
        exec(source, namespace)
        plan = [namespace["build"]]
    statefn.run(plan)
    result: State = {}

    def once() -> None:
        nonlocal result
        result = statefn.run(plan)

    elapsed = seconds(once)
    last = {"id": count - 1, "name": f"n{count - 1}", "even": (count - 1) % 2 == 0}
    expected = {"data": {"count": count, "last": last}}
    expect(result == expected, f"expected {expected!r}, got {result!r}")
    return {"ms": elapsed * 1000}


WORKLOADS: dict[str, Callable[..., dict[str, float]]] = {
    "operations": operations,
    "chain": chain,
    "branching": branching,
    "big_state": big_state,
    "cold_start": cold_start,
    "transform": transform,
    "cli_big_state": cli_big_state,
    "api_big_state": api_big_state,
}


def main() -> None:
    name, params = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    try:
        measured = WORKLOADS[name](**params)
    except WrongResult as wrong:
        sys.exit(f"statefn {name}: wrong result: {wrong}")
    print(json.dumps(measured))


if __name__ == "__main__":
    main()
