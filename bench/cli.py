"""Start-up and big-state costs of the command line (issue 12).

    .venv/bin/python bench/cli.py                  # every measure, 15 runs each
    .venv/bin/python bench/cli.py --repeats 5 big  # some of them

Every figure is the median wall time (``--cpu``: CPU time) of fresh processes, the
contender and its reference alternating run by run:

- ``help``: ``statefn --help`` against ``python -c pass``;
- ``version``: ``statefn --version`` against ``python -c pass``;
- ``run``: ``statefn run plan.json`` of a one-step job against ``python -c pass``;
- ``big``: a ~17 MB state through chained job steps, by ``statefn run plan.json -s
  state.json -o out.json`` against a Python process that reads the same files, calls
  ``statefn.run`` with no listener and writes the same output. The cost of a step is the
  difference between a 10-step and a 1-step plan, over 9, so reading, writing and start-up
  cancel out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from compare_lib.statefn_side import records

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
STATEFN = ROOT / ".venv" / "bin" / "statefn"
RECORDS = 100_000
STEPS = 10
CPU_TIME = "--cpu" in sys.argv  # set by --cpu: on a busy machine CPU time is steadier

API_SIDE = """
import sys, orjson, statefn
plan = orjson.loads(open(sys.argv[1], 'rb').read())
state = orjson.loads(open(sys.argv[2], 'rb').read())
result = statefn.run(plan, state)
open(sys.argv[3], 'wb').write(orjson.dumps(result, option=orjson.OPT_INDENT_2))
"""


def timed_ms(command: Sequence[str | Path]) -> float:
    """The process's wall time, or with ``--cpu`` its CPU time (user + system), in ms."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(map(str, command))}")
    return (usage.ru_utime + usage.ru_stime if CPU_TIME else wall) * 1000


def paired(
    contender: Sequence[str | Path], reference: Sequence[str | Path], repeats: int
) -> tuple[float, float]:
    """Medians of ``repeats`` alternating runs, after one untimed run of each."""
    timed_ms(contender)
    timed_ms(reference)
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(timed_ms(contender))
        theirs.append(timed_ms(reference))
    return statistics.median(ours), statistics.median(theirs)


def chain_plan(steps: int) -> dict[str, object]:
    stride = RECORDS // STEPS
    return {
        "workflow": {
            "steps": [
                {
                    "id": f"s{i}",
                    "expression": "def touch(state):\n"
                    f"    state['data']['records'][{i * stride}]['score'] += 1\n"
                    "    return state\n"
                    "fn(touch)\n",
                    **({"next": f"s{i + 1}"} if i + 1 < steps else {}),
                }
                for i in range(steps)
            ]
        }
    }


def startup(name: str, repeats: int, folder: Path) -> str:
    python_pass = [PYTHON, "-c", "pass"]
    if name == "run":
        plan = folder / "one.json"
        job = "fn(lambda state: {**state, 'data': {'ok': True}})"
        plan.write_text(json.dumps({"workflow": {"steps": [{"id": "only", "expression": job}]}}))
        command: list[str | Path] = [STATEFN, "run", plan, "--log", "none"]
    else:
        command = [STATEFN, f"--{name}"]
    ours, reference = paired(command, python_pass, repeats)
    label = " ".join(str(part) for part in command[1:2])
    return f"statefn {label}: {ours:.0f} ms, python -c pass {reference:.0f} ms, +{ours - reference:.0f} ms"


def big(repeats: int, folder: Path) -> str:
    state_file = folder / "state.json"
    state_file.write_text(json.dumps({"data": {"records": records(RECORDS)}}))
    size = state_file.stat().st_size / 1e6
    costs: dict[str, dict[int, float]] = {"cli": {}, "api": {}}
    for steps in (1, STEPS):
        plan = folder / f"plan{steps}.json"
        plan.write_text(json.dumps(chain_plan(steps)))
        out = folder / "out.json"
        cli = [STATEFN, "run", plan, "-s", state_file, "-o", out, "--log", "none"]
        api = [PYTHON, "-c", API_SIDE, plan, state_file, out]
        costs["cli"][steps], costs["api"][steps] = paired(cli, api, repeats)
    per_step = {
        side: (by_steps[STEPS] - by_steps[1]) / (STEPS - 1) for side, by_steps in costs.items()
    }
    return (
        f"{size:.1f} MB state, ms a step: statefn run {per_step['cli']:.1f}, "
        f"statefn.run {per_step['api']:.1f}, ratio {per_step['cli'] / per_step['api']:.2f} "
        f"(whole {STEPS}-step process: {costs['cli'][STEPS]:.0f} vs {costs['api'][STEPS]:.0f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("measures", nargs="*", default=["help", "version", "run", "big"])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--cpu", action="store_true", help="time CPU (user + system), not wall, per process"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.measures:
            if name == "big":
                print(big(max(3, args.repeats // 3), Path(scratch)), flush=True)
            else:
                print(startup(name, args.repeats, Path(scratch)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
