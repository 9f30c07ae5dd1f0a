"""bench/compare: the statefn side of each workload computes the right result (small sizes),
and the report holds each target against the right figure. Speed itself is not asserted."""

from __future__ import annotations

import importlib
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


@pytest.mark.parametrize("name", sorted(SMALL))
def test_statefn_side_checks_its_result_and_reports_positive_figures(name: str) -> None:
    measured = side.WORKLOADS[name](**SMALL[name])
    assert all(value > 0 for value in measured.values())


def test_statefn_side_and_table_cover_the_same_workloads() -> None:
    table = {
        s.params["workload"]
        for w in workloads.WORKLOADS
        for s in (w.contender, w.reference)
        if s.kind is workloads.SideKind.STATEFN
    }
    assert table == set(side.WORKLOADS) == set(SMALL)


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
