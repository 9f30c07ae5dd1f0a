"""The workloads of bench/compare: what each side runs and the target it is held to.

A workload has two sides, the contender (statefn) and the reference it is measured
against: the OpenFn runtime (or engine) for the same work, or, where OpenFn has no
counterpart, plain Python or statefn itself another way; a few engine workloads are held to
a bound of their own and have no reference. A side is one kind of process (`SideKind`) with
its parameters; every run of a side is a fresh process, and the parent measures its wall
time and peak resident memory.
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
    STATEFN_ENGINE = "engine_side.py"  # a workload of engine_side.py (statefn.engine)
    OPENFN_ENGINE = "openfn_engine_side.mjs"  # the same under Node.js (@openfn/engine-multi)
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
    """A bound on `metric`: the contender over the reference (ratio), minus it
    (difference), or alone (absolute); at most `limit`, or at least it with `at_least`."""

    metric: str
    unit: str
    limit: float
    difference: bool = False
    absolute: bool = False
    at_least: bool = False

    def value(self, contender: float, reference: float | None) -> float:
        """The figure the target bounds."""
        if self.absolute:
            return contender
        assert reference is not None, "a ratio or a difference needs the reference"
        return contender - reference if self.difference else contender / reference

    def met(self, value: float) -> bool:
        return value >= self.limit if self.at_least else value <= self.limit

    def describe(self) -> str:
        """The target as the report states it."""
        bound = ">=" if self.at_least else "<="
        if self.absolute:
            return f"{bound} {self.limit:g} {self.unit}"
        if self.difference:
            return f"{bound} {self.limit:g} {self.unit} over the reference"
        return f"ratio {bound} {self.limit:g}"


@dataclass(frozen=True)
class Workload:
    """Two sides doing the same work, and the targets for their medians."""

    name: str
    title: str
    how: str
    contender: Side
    reference: Side | None
    targets: tuple[Target, ...]
    # Workloads timed by process wall time get one untimed round first, so the first
    # timed run does not pay for a cold disk cache.
    warm_up_round: bool = False
    # Rounds (one run of each side) per `--repeats`: short process-timed workloads take
    # several, since a single process start is noisy and cheap to repeat.
    rounds_per_repeat: int = 1
    # Workloads that time hundreds of runs inside each side's process take at most this
    # many rounds, whatever `--repeats` says.
    max_rounds: int | None = None
    # Measurements named `<curve>_<n>` form a curve the report shows as a table.
    curve: str | None = None

    def rounds(self, repeats: int) -> int:
        rounds = repeats * self.rounds_per_repeat
        return rounds if self.max_rounds is None else min(rounds, self.max_rounds)

    def sides(self) -> tuple[Side, ...]:
        return (self.contender,) if self.reference is None else (self.contender, self.reference)


def both(workload: str, **params: Any) -> tuple[Side, Side]:
    return (
        Side("statefn", SideKind.STATEFN, {"workload": workload, **params}),
        Side("OpenFn", SideKind.OPENFN, {"workload": workload, **params}),
    )


def engines(workload: str, **params: Any) -> tuple[Side, Side]:
    return (
        Side("statefn engine", SideKind.STATEFN_ENGINE, {"workload": workload, **params}),
        Side("OpenFn engine-multi", SideKind.OPENFN_ENGINE, {"workload": workload, **params}),
    )


OPERATIONS = 10_000
CHAIN_STEPS = 200
BRANCHES = 50
RECORDS = 100_000
BIG_STATE_STEPS = 10
TRANSFORM_ROWS = 300_000
LATENCY_RUNS = 200
THROUGHPUT_RUNS = 500
RUN_TIMEOUT_MS = 500
TIMEOUT_RUNS = 5
MEMORY_LIMIT_MB = 200
OOM_RUNS = 3
LEDGER_RUNS = 200
ENGINE_BIG_STATE_STEPS = 5
BIG_PAYLOAD_LIMIT_MB = 64  # over the 17 MB state: every event carries it whole
DEFAULT_PAYLOAD_LIMIT_MB = 10  # both engines' default
PARENT_RUNS = 2_000
PARENT_EVERY = 200
PARENT_BATCH = 20

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
    Workload(
        "engine_latency",
        "engine: warm latency",
        f"{LATENCY_RUNS} trivial runs one after another on a warm engine with 2 workers, "
        "each timed from submit to result (statefn: `submit(...).result()`; OpenFn: "
        "`execute` to `workflow-complete`), after 10 untimed runs. The job sets `data` with "
        "the common adaptor's `fn` (OpenFn: imported from @openfn/language-common). "
        "statefn's process also runs the same plan in-process with `statefn.run` after each "
        "engine run: the isolation cost is the engine's percentile minus that one's.",
        *engines("latency", runs=LATENCY_RUNS),
        targets=(
            Target("p50_ms", "ms p50", 0.02),
            Target("p95_ms", "ms p95", 0.02),
            Target("isolation_p50_ms", "ms p50 over in-process `statefn.run`", 10, absolute=True),
            Target("isolation_p95_ms", "ms p95 over in-process `statefn.run`", 10, absolute=True),
        ),
        # Three rounds: the isolation cost is near its bound and swings with the load.
        max_rounds=3,
    ),
    Workload(
        "engine_throughput",
        "engine: throughput",
        f"{THROUGHPUT_RUNS} trivial runs (the job of the latency workload) submitted at once "
        "to a warm engine with 2 workers; runs per second until the last outcome, every "
        "outcome checked.",
        *engines("throughput", runs=THROUGHPUT_RUNS),
        targets=(Target("runs_per_s", "runs per second", 50, at_least=True),),
        max_rounds=1,
    ),
    Workload(
        "engine_timeout",
        "engine: run timeout",
        f"A job that loops forever, {TIMEOUT_RUNS} times one after another, with a run "
        f"timeout of {RUN_TIMEOUT_MS} ms: how long after the limit the `TimeoutError` "
        "outcome arrives, timed from submit (median over the runs). OpenFn's figure is "
        "shown for comparison; the target is statefn's own.",
        *engines("timeout", limit_ms=RUN_TIMEOUT_MS, runs=TIMEOUT_RUNS),
        targets=(
            Target("past_limit_ms", "ms past the limit", 200, absolute=True),
            Target("worst_past_limit_ms", "ms past the limit (worst run)", 200, absolute=True),
        ),
    ),
    Workload(
        "engine_oom",
        "engine: memory limit",
        f"A job that allocates steadily (1 MB, then some arithmetic, again and again; a "
        f"few hundred MB per second), {OOM_RUNS} times, with `memory_limit_mb="
        f"{MEMORY_LIMIT_MB}`: the time from its worker's resident memory crossing the limit "
        "(read from /proc every 5 ms by the benchmark, outside the engine) to the "
        "`OOMError` outcome (median over the runs). statefn alone. The crossing is "
        "interpolated between the last reading under the limit and the first over it or, "
        "when the worker was killed before a reading saw it over, extrapolated from its "
        "growth over the last 200 ms (`runs_seen_over_the_limit` counts the runs a reading "
        "saw over it).",
        Side(
            "statefn engine",
            SideKind.STATEFN_ENGINE,
            {"workload": "oom", "limit_mb": MEMORY_LIMIT_MB, "runs": OOM_RUNS},
        ),
        None,
        targets=(
            Target("after_crossing_ms", "ms after crossing the limit", 1000, absolute=True),
            Target(
                "worst_after_crossing_ms",
                "ms after crossing the limit (worst run)",
                1000,
                absolute=True,
            ),
        ),
    ),
    Workload(
        "engine_ledger",
        "engine: ledger cost",
        f"{LEDGER_RUNS} two-step runs one after another on a warm engine with a SQLite "
        "ledger (a fresh file), each followed by the same run on a warm engine without a "
        "ledger, both in one process; the cost is the difference of the median "
        "submit-to-result times. It checks every run was recorded. statefn alone.",
        Side(
            "statefn engine", SideKind.STATEFN_ENGINE, {"workload": "ledger", "runs": LEDGER_RUNS}
        ),
        None,
        targets=(Target("ledger_ms_per_run", "ms per run over no ledger", 2, absolute=True),),
    ),
    Workload(
        "engine_big_state",
        "engine: big state",
        f"The big-state records ({RECORDS:,}, about 18 MB of JSON) through "
        f"{ENGINE_BIG_STATE_STEPS} chained steps on a warm engine, each step a job touching "
        "one record, submit to result with every event received (statefn: "
        "`handle.events()`, each state decoded; OpenFn: listening to its events), at a "
        f"payload limit of {BIG_PAYLOAD_LIMIT_MB} MB so that every event carries the whole "
        "state on both sides. Then once more, untimed, at the engines' default payload limit "
        f"({DEFAULT_PAYLOAD_LIMIT_MB} MB), to check what each delivers (see the notes). "
        "`events` counts the events each side received in the timed run (OpenFn's include "
        "its `workflow-log` events). `decode_ms` is what one decode of the state costs "
        "statefn's consumer (as `handle.events()` decodes it, measured after the timed run), "
        "and `decodes_ms_per_step` the steps + 1 such decodes the timed run's consumer makes "
        "one after another in its thread, per step: a floor under `ms_per_step` that no "
        "engine can go below while every event's state is decoded in one Python thread.",
        *engines(
            "big_state",
            count=RECORDS,
            steps=ENGINE_BIG_STATE_STEPS,
            payload_limit_mb=BIG_PAYLOAD_LIMIT_MB,
            small_limit_mb=DEFAULT_PAYLOAD_LIMIT_MB,
        ),
        targets=(Target("ms_per_step", "ms per step", 0.1),),
    ),
    Workload(
        "engine_memory",
        "engine: parent memory",
        f"{PARENT_RUNS:,} trivial runs ({PARENT_BATCH} submitted at a time) on one engine: "
        "the resident memory of the engine's parent process after 10 warm-up runs and after "
        f"every {PARENT_EVERY} runs (the curve is below). Flat means it grows by at most "
        f"5 MB from run {PARENT_EVERY} to run {PARENT_RUNS:,}. statefn alone.",
        Side(
            "statefn engine",
            SideKind.STATEFN_ENGINE,
            {
                "workload": "parent_memory",
                "runs": PARENT_RUNS,
                "every": PARENT_EVERY,
                "batch": PARENT_BATCH,
            },
        ),
        None,
        targets=(Target("rss_growth_mb", "MB grown", 5, absolute=True),),
        max_rounds=1,
        curve="rss_mb_at",
    ),
)
