"""bench/RESULTS.md: the machine, the versions, each workload's medians and its targets."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from .workloads import Target, Workload

__all__ = ["Outcome", "render"]


@dataclass
class Outcome:
    """What the runs of one workload measured, side by side (or why they stopped)."""

    workload: Workload
    contender: list[dict[str, float]] = field(default_factory=list)
    reference: list[dict[str, float]] = field(default_factory=list)
    failure: str | None = None

    def median(self, runs: list[dict[str, float]], metric: str) -> float:
        return statistics.median(run[metric] for run in runs)

    def verdict(self, target: Target) -> tuple[float, bool] | None:
        """The target's figure from the medians and whether it is met; None without runs."""
        if self.failure or not self.contender:
            return None
        ours = self.median(self.contender, target.metric)
        if target.absolute:
            value = target.value(ours, None)
        elif not self.reference:
            return None
        else:
            value = target.value(ours, self.median(self.reference, target.metric))
        return value, target.met(value)


def figure(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 1 else f"{value:.1f}"


def spread(runs: list[dict[str, float]], metric: str) -> str:
    values = [run[metric] for run in runs if metric in run]
    if not values:
        return "n/a"
    middle = figure(statistics.median(values))
    if len(values) < 2:
        return middle
    return f"{middle} ({figure(min(values))} to {figure(max(values))})"


def result_rows(outcomes: list[Outcome]) -> list[str]:
    rows = [
        "| workload | measure | statefn | reference | reference median | statefn vs reference | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        work = outcome.workload
        reference = work.reference.label if work.reference else "none"
        for target in work.targets:
            verdict = outcome.verdict(target)
            if verdict is None:
                failed = outcome.failure or "no runs"
                rows.append(
                    f"| {work.title} | {target.unit} | n/a | {reference} | n/a | n/a "
                    f"| {target.describe()} | not measured: {failed} |"
                )
                continue
            value, met = verdict
            if target.absolute:
                shown = "n/a"
            elif target.difference:
                shown = f"{value:+.1f} {target.unit}"
            else:
                shown = f"{value:.3g}"
            rows.append(
                f"| {work.title} | {target.unit} "
                f"| {spread(outcome.contender, target.metric)} "
                f"| {reference} "
                f"| {spread(outcome.reference, target.metric)} "
                f"| {shown} | {target.describe()} | {'yes' if met else '**no**'} |"
            )
    return rows


def curves(outcomes: list[Outcome]) -> list[str]:
    """For each workload with a curve, a table: one row per point, one column per run."""
    lines: list[str] = []
    for outcome in outcomes:
        prefix = outcome.workload.curve
        if prefix is None or not outcome.contender:
            continue
        points = sorted(
            {int(key.rsplit("_", 1)[1]) for run in outcome.contender for key in run
             if key.startswith(prefix + "_")}
        )  # fmt: skip
        runs = outcome.contender
        lines += [
            f"### {outcome.workload.title} (`--only {outcome.workload.name}`)",
            "",
            "| after run | " + " | ".join(f"MB, run {i + 1}" for i in range(len(runs))) + " |",
            "|---|" + "---|" * len(runs),
            *(
                f"| {point:,} | "
                + " | ".join(f"{run.get(f'{prefix}_{point}', float('nan')):.1f}" for run in runs)
                + " |"
                for point in points
            ),
            "",
        ]
    return lines


# Measured for every run by the parent; the targets that use them show them.
_PROCESS_METRICS = ("wall_ms", "peak_rss_mb")


def other_rows(outcomes: list[Outcome]) -> list[str]:
    """What the engine workloads' sides measured besides their targets (medians)."""
    rows: list[str] = []
    for outcome in outcomes:
        work = outcome.workload
        if not work.name.startswith("engine_"):
            continue
        shown = {target.metric for target in work.targets}
        keys = dict.fromkeys(
            key
            for run in [*outcome.contender, *outcome.reference]
            for key in run
            if key not in shown
            and key not in _PROCESS_METRICS
            and not (work.curve and key.startswith(work.curve + "_"))
        )
        reference = work.reference.label if work.reference else "none"
        rows += [
            f"| {work.title} | `{key}` | {spread(outcome.contender, key)} | {reference} "
            f"| {spread(outcome.reference, key)} |"
            for key in keys
        ]
    if not rows:
        return []
    return [
        "## Other measurements of the engine workloads",
        "",
        "| workload | measurement | statefn | reference | reference median |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def summary(outcomes: list[Outcome]) -> str:
    verdicts = [outcome.verdict(t) for outcome in outcomes for t in outcome.workload.targets]
    measured = [v for v in verdicts if v is not None]
    met = sum(1 for _, ok in measured if ok)
    line = f"{met} of {len(measured)} measured targets met"
    missing = len(verdicts) - len(measured)
    return line + (f"; {missing} not measured." if missing else ".")


def render(outcomes: list[Outcome], machine: dict[str, str], repeats: int, notes: list[str]) -> str:
    """The whole RESULTS.md."""
    lines = [
        "# statefn and the OpenFn runtime, side by side",
        "",
        "Written by `bench/compare` (`bench/compare --help` for its options) with "
        f"`--repeats {repeats}`: each workload ran that many times per side (three times as "
        "many for the short process-timed ones; the engine workloads that time hundreds of "
        "runs inside one process, at most 3 times or once), the sides alternating (contender, reference, "
        "contender, ...), every run a fresh process. Figures are medians, with the lowest and highest run "
        'in brackets; "statefn vs reference" is the ratio of the medians (or, where the '
        'target says "over the reference", their difference; targets on statefn\'s figure '
        "alone show n/a there). Lower is better, except where the target says >=.",
        "",
        "## Machine and versions",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine.items()),
        "",
        "## Results",
        "",
        *result_rows(outcomes),
        "",
        summary(outcomes),
        "",
        *other_rows(outcomes),
        *(["## Curves", "", *curves(outcomes)] if curves(outcomes) else []),
        "## The workloads",
        "",
        *(
            f"- **{o.workload.title}** (`--only {o.workload.name}`, {len(o.contender)} "
            f"run{'' if len(o.contender) == 1 else 's'} per side): {o.workload.how}"
            for o in outcomes
        ),
        "",
        "## Notes",
        "",
        *(f"- {note}" for note in notes),
        "",
    ]
    return "\n".join(lines)
