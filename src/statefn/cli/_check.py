"""``statefn compile`` and ``statefn validate``: check jobs and plans without running them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._exits import ExitCode
from ._logs import CliLogs
from ._plans import LoadedPlan, linker_option, load_plan
from ._render import problems_not_listed, render_diagnostic
from ._repo import repo_dir

__all__ = ["compile_command", "validate_command"]

_SHOWN_SOURCE = 72


def compile_command(args: argparse.Namespace, logs: CliLogs) -> ExitCode:
    """Print each job's operations with their lines, or its diagnostics."""
    loaded = load_plan(Path(args.path), args.adaptor)
    ok = True
    for step in loaded.steps:
        heading = str(loaded.path) if loaded.is_job else f"step {step['id']}"
        if not isinstance(step.get("expression"), str):
            print(f"{heading}: a trigger (no job)")
            continue
        compiled = _compile_step(loaded, step, logs)
        if compiled is None:
            ok = False
            continue
        operations = compiled.operations
        print(f"{heading}: {len(operations)} operation{'s' * (len(operations) != 1)}")
        for operation in operations:
            print(
                f"  {operation.index + 1:>3}  line {operation.line:<4} {_first_line(operation.source)}"
            )
    return ExitCode.OK if ok else ExitCode.INVALID_INPUT


def validate_command(args: argparse.Namespace, logs: CliLogs) -> ExitCode:
    """Validate the plan, compile every step's job, and say what was checked."""
    loaded = load_plan(Path(args.path), args.adaptor)
    jobs = [step for step in loaded.steps if isinstance(step.get("expression"), str)]
    broken = [step["id"] for step in jobs if _compile_step(loaded, step, logs) is None]
    if broken:
        logs.cli.error(f"{loaded.path}: the job of {', '.join(broken)} does not compile")
    linker = linker_option(args.adaptor, repo_dir(args.repo_dir))
    unlinked = [step["id"] for step in jobs if not _link_adaptors(loaded, step, linker, logs)]
    if unlinked:
        logs.cli.error(f"{loaded.path}: the adaptors of {', '.join(unlinked)} cannot be loaded")
    if broken or unlinked:
        return ExitCode.INVALID_INPUT
    triggers = [step["id"] for step in loaded.steps if step not in jobs]
    counted = [_count(len(jobs), "job") + f" compiled ({', '.join(s['id'] for s in jobs)})"]
    if triggers:
        counted.append(_count(len(triggers), "trigger") + f" ({', '.join(triggers)})")
    print(f"{loaded.path}: valid ({_count(len(loaded.steps), 'step')}: {', '.join(counted)})")
    return ExitCode.OK


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def _compile_step(loaded: LoadedPlan, step: dict[str, Any], logs: CliLogs) -> Any:
    """The compiled job of ``step``, or None (after reporting why) when it does not compile."""
    source: str = step["expression"]
    from statefn import CompileError, compile_job

    try:
        return compile_job(source, adaptors=step.get("adaptors", []))
    except CompileError as error:
        label = loaded.source_label(step["id"])
        for problem in error.problems:
            logs.report(
                render_diagnostic(
                    label, problem.line, problem.column, problem.message, source, problem.src
                )
            )
        more = problems_not_listed(error.details)
        if more:
            logs.report(more)
        if error.fix:
            logs.report(f"  fix: {error.fix}")
        return None


def _link_adaptors(
    loaded: LoadedPlan, step: dict[str, Any], linker: dict[str, Any], logs: CliLogs
) -> bool:
    """Whether every adaptor of ``step`` can be found and imported, as a run would."""
    from statefn import StatefnError
    from statefn._linker import Linker

    ok = True
    for spec in step.get("adaptors", []):
        try:
            Linker.from_option(linker).with_overrides(step.get("linker")).load(spec)
        except StatefnError as error:
            ok = False
            fix = f"\n  fix: {error.fix}" if error.fix else ""
            logs.report(f"{loaded.source_label(step['id'])}: {error.name}: {error.message}{fix}")
    return ok


def _first_line(source: str) -> str:
    """The operation's first line; for a decorated ``def``, its decorators and ``def`` line."""
    lines = [line.strip() for line in source.strip().splitlines()]
    shown = 1
    while shown < len(lines) and lines[shown - 1].startswith("@"):
        shown += 1
    text = " ".join(lines[:shown])
    more = shown < len(lines) or len(text) > _SHOWN_SOURCE
    return text[:_SHOWN_SOURCE] + (" …" if more else "")
