"""bench/compare: the statefn side of each workload (the engine's included) computes the
right result (small sizes), and the report holds each target against the right figure.
Speed itself is not asserted."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def bench_module(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(f"compare_lib.{name}")


side = bench_module("statefn_side")
engine_side = bench_module("engine_side")
workloads = bench_module("workloads")
report = bench_module("report")

SMALL: dict[str, dict[str, Any]] = {
    "operations": {"count": 50},
    "chain": {"steps": 5},
    "branching": {"branches": 6, "runs": 1},
    "big_state": {"count": 100, "steps": 4},
    "cold_start": {},
    "transform": {"count": 30, "as_job": True},
    "cli_big_state": {"count": 5000, "steps": 4},
    "api_big_state": {"count": 5000, "steps": 4},
}


ENGINE_SMALL: dict[str, dict[str, Any]] = {
    "latency": {"runs": 3},
    "throughput": {"runs": 6},
    "timeout": {"limit_ms": 200, "runs": 1},
    "oom": {"limit_mb": 120, "runs": 1},
    "ledger": {"runs": 2},
    # A limit below the state's size: every event withholds it.
    "big_state": {"count": 100, "steps": 2, "payload_limit_mb": 1, "small_limit_mb": 0.001},
    "parent_memory": {"runs": 4, "every": 2, "batch": 2},
}


def kinds(kind: Any) -> set[str]:
    return {s.params["workload"] for w in workloads.WORKLOADS for s in w.sides() if s.kind is kind}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_statefn_side_checks_its_result_and_reports_figures(name: str) -> None:
    # Each side checks its own result (``expect``) and raises on a wrong one. The figures are
    # only numbers here: several are the difference of two timings (a run of N steps less a
    # run of one), which a busy machine can make negative at these small sizes.
    measured = side.WORKLOADS[name](**SMALL[name])
    assert all(isinstance(value, float) and math.isfinite(value) for value in measured.values())


def test_statefn_side_and_table_cover_the_same_workloads() -> None:
    assert kinds(workloads.SideKind.STATEFN) == set(side.WORKLOADS) == set(SMALL)


@pytest.mark.parametrize("name", sorted(ENGINE_SMALL))
def test_engine_side_checks_its_outcomes_and_reports_figures(name: str) -> None:
    measured = engine_side.WORKLOADS[name](**ENGINE_SMALL[name])
    assert measured and all(math.isfinite(value) for value in measured.values())
    # Differences of two timings may come out below zero: the ledger's cost per run on a busy
    # machine, and the time from a hog's resident memory crossing the limit to its outcome
    # (when the engine's watchdog saw the crossing before the benchmark's sampler did, the
    # crossing is extrapolated from the hog's growth, and may land just after the kill).
    signed = {"ledger_ms_per_run", "after_crossing_ms", "worst_after_crossing_ms"}
    assert all(value >= 0 for key, value in measured.items() if key not in signed)


def test_engine_side_and_table_cover_the_same_workloads() -> None:
    assert kinds(workloads.SideKind.STATEFN_ENGINE) == set(engine_side.WORKLOADS)
    assert set(engine_side.WORKLOADS) == set(ENGINE_SMALL)


def test_engine_big_state_reports_every_state_withheld_over_the_payload_limit() -> None:
    measured = engine_side.big_state(count=100, steps=3, payload_limit_mb=1, small_limit_mb=0.001)
    assert measured["withheld_at_small_limit"] == 3


def test_parent_memory_reports_a_point_every_so_many_runs() -> None:
    measured = engine_side.parent_memory(runs=6, every=3, batch=3)
    assert {"rss_mb_at_0", "rss_mb_at_3", "rss_mb_at_6"} <= set(measured)
    assert measured["rss_growth_mb"] == measured["rss_mb_at_6"] - measured["rss_mb_at_3"]


def test_transform_as_plain_operation_gives_the_job_result() -> None:
    measured = side.transform(count=30, as_job=False)
    assert set(measured) == {"ms"}


def test_wrong_result_is_reported_not_measured() -> None:
    with pytest.raises(side.WrongResult, match="n != 3"):
        side.expect(False, "n != 3")


def test_ratio_target_is_met_at_its_limit_and_missed_above() -> None:
    target = workloads.Target("ms", "ms", 0.5)
    work = workloads.Workload("w", "w", "", *workloads.both("w"), targets=(target,))
    met = report.Outcome(work, contender=[{"ms": 1.0}], reference=[{"ms": 2.0}])
    missed = report.Outcome(work, contender=[{"ms": 3.0}, {"ms": 1.2}], reference=[{"ms": 2.0}])
    assert met.verdict(target) == (0.5, True)
    assert missed.verdict(target) == (1.05, False)


def test_difference_target_subtracts_the_reference() -> None:
    target = workloads.Target("wall_ms", "ms", 150, difference=True)
    work = workloads.Workload("w", "w", "", *workloads.both("w"), targets=(target,))
    outcome = report.Outcome(work, contender=[{"wall_ms": 170.0}], reference=[{"wall_ms": 10.0}])
    assert outcome.verdict(target) == (160.0, False)


def test_failed_workload_is_reported_as_not_measured() -> None:
    target = workloads.Target("ms", "ms", 0.5)
    work = workloads.Workload("w", "failing", "", *workloads.both("w"), targets=(target,))
    outcome = report.Outcome(work, failure="OpenFn: wrong result: n != 3")
    text = report.render([outcome], {"CPU": "test"}, 1, [])
    assert "not measured: OpenFn: wrong result: n != 3" in text
    assert "0 of 0 measured targets met; 1 not measured." in text


def test_absolute_target_holds_the_contender_alone_without_a_reference() -> None:
    target = workloads.Target("late_ms", "ms", 200, absolute=True)
    work = workloads.Workload("w", "w", "", workloads.both("w")[0], None, targets=(target,))
    outcome = report.Outcome(work, contender=[{"late_ms": 150.0}, {"late_ms": 250.0}])
    assert outcome.verdict(target) == (200.0, True)
    assert "| w | ms | 200 (150 to 250) | none | n/a | n/a | <= 200 ms | yes |" in report.render(
        [outcome], {}, 1, []
    )


def test_at_least_target_is_met_at_its_limit_and_missed_below() -> None:
    target = workloads.Target("runs_per_s", "runs per second", 50, at_least=True)
    work = workloads.Workload("w", "w", "", *workloads.engines("w"), targets=(target,))
    met = report.Outcome(work, contender=[{"runs_per_s": 100.0}], reference=[{"runs_per_s": 2.0}])
    missed = report.Outcome(work, contender=[{"runs_per_s": 90.0}], reference=[{"runs_per_s": 2.0}])
    assert met.verdict(target) == (50.0, True)
    assert missed.verdict(target) == (45.0, False)
    assert target.describe() == "ratio >= 50"


def test_curve_is_rendered_as_a_table_of_its_points() -> None:
    target = workloads.Target("rss_growth_mb", "MB", 5, absolute=True)
    work = workloads.Workload(
        "w", "grows", "", workloads.both("w")[0], None, targets=(target,), curve="rss_mb_at"
    )
    run = {"rss_growth_mb": 1.0, "rss_mb_at_0": 30.0, "rss_mb_at_200": 31.0, "rss_mb_at_2000": 32.0}
    text = report.render([report.Outcome(work, contender=[run])], {}, 1, [])
    assert "| after run | MB, run 1 |" in text
    assert "| 200 | 31.0 |" in text and "| 2,000 | 32.0 |" in text


def test_engine_workloads_take_at_most_their_rounds() -> None:
    by_name = {w.name: w for w in workloads.WORKLOADS}
    assert by_name["engine_latency"].rounds(5) == 3
    assert by_name["engine_latency"].rounds(1) == 1
    assert by_name["engine_throughput"].rounds(5) == 1


def crossing_of(samples: list[tuple[float, int]]) -> Any:
    crossing = engine_side.Crossing(every_s=0.005)
    crossing.samples = samples
    return crossing


def test_oom_crossing_is_interpolated_between_the_readings_either_side() -> None:
    crossing = crossing_of([(0.0, 50), (1.0, 150), (2.0, 250), (3.0, 30)])
    assert crossing.crossed(200) == (1.5, True)


def test_oom_crossing_is_extrapolated_when_no_reading_saw_it_over() -> None:
    # Growth over the last 200 ms before the last reading (at 1.05): 60 in 0.15 s.
    crossing = crossing_of([(0.5, 20), (0.9, 100), (1.0, 140), (1.05, 160), (1.2, 30)])
    assert crossing.crossed(200) == pytest.approx((1.15, False))
