"""The workloads of bench/compare: what each side runs and the target it is held to.

A workload has two sides, the contender (statefn) and the reference it is measured
against: the OpenFn runtime for the same work, or, where OpenFn has no counterpart, plain
Python. A side is one kind of process (`SideKind`) with its parameters; every run of a side
is a fresh process, and the parent measures its wall time and peak resident memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["WORKLOADS", "Side", "SideKind", "Target", "Workload"]


class SideKind(Enum):
    """Which program a side runs."""

    STATEFN = "statefn_side.py"  # a workload of statefn_side.py in the venv's Python
    OPENFN = "openfn_side.mjs"  # a workload of openfn_side.mjs under Node.js
    STATEFN_CLI = "statefn run"  # `.venv/bin/statefn run plan.json`, a one-step workflow
    STATEFN_HELP = "statefn --help"  # `.venv/bin/statefn --help`: start-up, no runtime
    PYTHON_PASS = "python -c pass"  # the interpreter starting and stopping, nothing else


@dataclass(frozen=True)
class Side:
    """One side of a workload: a label for the report, a program and its parameters."""

    label: str
    kind: SideKind
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """A bound on `metric`: the contender over the reference (ratio) or minus it (difference)."""

    metric: str
    unit: str
    limit: float
    difference: bool = False

    def value(self, contender: float, reference: float) -> float:
        """The figure the target bounds."""
        return contender - reference if self.difference else contender / reference

    def describe(self) -> str:
        """The target as the report states it."""
        if self.difference:
            return f"<= {self.limit:g} {self.unit} over the reference"
        return f"ratio <= {self.limit:g}"


@dataclass(frozen=True)
class Workload:
    """Two sides doing the same work, and the targets for their medians."""

    name: str
    title: str
    how: str
    contender: Side
    reference: Side
    targets: tuple[Target, ...]
    # Workloads timed by process wall time get one untimed round first, so the first
    # timed run does not pay for a cold disk cache.
    warm_up_round: bool = False
    # Rounds (one run of each side) per `--repeats`: short process-timed workloads take
    # several, since a single process start is noisy and cheap to repeat.
    rounds_per_repeat: int = 1


def both(workload: str, **params: Any) -> tuple[Side, Side]:
    return (
        Side("statefn", SideKind.STATEFN, {"workload": workload, **params}),
        Side("OpenFn", SideKind.OPENFN, {"workload": workload, **params}),
    )


OPERATIONS = 10_000
CHAIN_STEPS = 200
BRANCHES = 50
RECORDS = 100_000
BIG_STATE_STEPS = 10
TRANSFORM_ROWS = 300_000

WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "operations",
        "per-operation overhead",
        f"One step of {OPERATIONS:,} trivial operations given as functions (each adds 1 to "
        "`n`), timed after a warm-up run in the same process.",
        *both("operations", count=OPERATIONS),
        targets=(Target("us_per_operation", "µs per operation", 0.5),),
    ),
    Workload(
        "chain",
        "chain of job steps",
        f"{CHAIN_STEPS} chained steps, each one job given as source that sets `n`; every "
        "step's source differs, so compiling each job is part of the run. Timed after a "
        "warm-up run of other sources.",
        *both("chain", steps=CHAIN_STEPS),
        targets=(Target("ms_per_step", "ms per step", 0.25),),
    ),
    Workload(
        "branching",
        "branching",
        f"One step fanning out to {BRANCHES} steps through condition strings, half of them "
        "true; each step one function. Median of 5 runs after a warm-up run.",
        *both("branching", branches=BRANCHES, runs=5),
        targets=(Target("ms_per_run", "ms per run", 0.5),),
    ),
    Workload(
        "big_state",
        "big state",
        f"{RECORDS:,} records (id, name, email, 5 tags, active, score; about 18 MB of JSON) "
        f"through {BIG_STATE_STEPS} chained steps, each a function touching one record. "
        "Peak memory is the whole process's (building the records included).",
        *both("big_state", count=RECORDS, steps=BIG_STATE_STEPS),
        targets=(
            Target("ms_per_step", "ms per step", 0.15),
            Target("peak_rss_mb", "MB peak RSS", 0.6),
        ),
    ),
    Workload(
        "cold_start",
        "cold start",
        "A whole process: start the interpreter, import the runtime, run a one-step "
        "workflow whose job is given as source, check its result, exit.",
        *both("cold_start"),
        targets=(Target("wall_ms", "ms per process", 0.45),),
        warm_up_round=True,
        rounds_per_repeat=3,
    ),
    Workload(
        "transform",
        "job-code transform",
        f"A loop building {TRANSFORM_ROWS:,} dicts, run by statefn as job source (compiled "
        "and sandboxed) against the same function given as a plain Python operation. No "
        "OpenFn counterpart: the reference is plain Python.",
        Side(
            "job source",
            SideKind.STATEFN,
            {"workload": "transform", "count": TRANSFORM_ROWS, "as_job": True},
        ),
        Side(
            "plain Python",
            SideKind.STATEFN,
            {"workload": "transform", "count": TRANSFORM_ROWS, "as_job": False},
        ),
        targets=(Target("ms", "ms", 1.3),),
    ),
    Workload(
        "cli_big_state",
        "`statefn run`, big state",
        f"The big-state records (about 18 MB of JSON) read from a file through {BIG_STATE_STEPS} "
        "chained job steps, each touching one record, the output written to a file: by "
        "`statefn run plan.json -s state.json -o out.json` (the command's code, called in "
        "the process) against `statefn.run` with no listener. A step's cost is the run's "
        "time less that of a one-step run, over the steps, so reading and writing cancel "
        "out. No OpenFn counterpart: the reference is statefn's own API.",
        Side(
            "statefn run",
            SideKind.STATEFN,
            {"workload": "cli_big_state", "count": RECORDS, "steps": BIG_STATE_STEPS},
        ),
        Side(
            "statefn.run",
            SideKind.STATEFN,
            {"workload": "api_big_state", "count": RECORDS, "steps": BIG_STATE_STEPS},
        ),
        targets=(Target("ms_per_step", "ms per step", 1.2),),
    ),
    Workload(
        "cli",
        "`statefn run`",
        "The command line running a one-step workflow from a JSON plan file "
        "(`.venv/bin/statefn run plan.json`, output checked) against `python -c pass`. "
        "No OpenFn counterpart: the reference is the interpreter itself.",
        Side("statefn run", SideKind.STATEFN_CLI),
        Side("python -c pass", SideKind.PYTHON_PASS),
        targets=(Target("wall_ms", "ms", 70, difference=True),),
        warm_up_round=True,
        rounds_per_repeat=3,
    ),
    Workload(
        "cli_help",
        "`statefn --help`",
        "The command line printing its help (`.venv/bin/statefn --help`), which imports "
        "none of the runtime, against `python -c pass`.",
        Side("statefn --help", SideKind.STATEFN_HELP),
        Side("python -c pass", SideKind.PYTHON_PASS),
        targets=(Target("wall_ms", "ms", 40, difference=True),),
        warm_up_round=True,
        rounds_per_repeat=3,
    ),
)
