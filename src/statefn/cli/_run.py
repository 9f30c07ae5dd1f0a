"""``statefn run``: run a workflow or a job, report progress, write the final state.

The loop this serves: edit a job, run the workflow, read the output, re-run from the step
that failed (``--cache-steps`` once, then ``--start STEP`` or ``--only STEP``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from statefn import run
from statefn._errors import (
    CompileError,
    InputError,
    LedgerError,
    StatefnError,
    ValidationError,
)
from statefn._masking import Masker
from statefn._state import MAX_INPUT_DEPTH, nesting_depth

from ._cache import StepCache
from ._exits import CliError, ExitCode
from ._files import read_credentials, read_data
from ._hints import add_adaptor_hint
from ._isolate import ledger_url, run_elsewhere
from ._logs import CliLogs, describe_state
from ._plans import LoadedPlan, check_credentials, linker_option, load_plan
from ._render import render_error_record
from ._repo import repo_dir
from ._select import find_step

__all__ = [
    "RunReporter",
    "render_step_error",
    "report_aborted",
    "report_failures",
    "run_command",
    "write_state",
]

_PROGRESS = {"progress": True}
_CYAN, _GREEN, _RED, _DIM = "\x1b[36m", "\x1b[32m", "\x1b[31m", "\x1b[2m"


def run_command(args: argparse.Namespace, logs: CliLogs) -> ExitCode:
    """Run the plan or job at ``args.path`` with the options of ``statefn run``."""
    _check_limits(args)
    loaded = load_plan(Path(args.path), args.adaptor)
    if args.output is not None:
        _check_writable(Path(args.output))
    credentials = read_credentials(args.credentials) if args.credentials else None
    check_credentials(loaded, credentials)
    _mask_secrets(logs, loaded, credentials)
    logs.sanitize(args.sanitize)

    selected, flag = (args.only, "--only") if args.only else (args.start, "--start")
    start = find_step(loaded.steps, selected, flag) if selected else None
    end = start if args.only else (find_step(loaded.steps, args.end, "--end") if args.end else None)
    cache = StepCache.beside(loaded.path, loaded.workflow_name)
    state = _input_state(args.state, start, cache, loaded, logs)
    if isinstance(state, dict):
        logs.mask(Masker.for_configuration(state.get("configuration")))
    if args.cache_steps and start is None:
        cache.clear()

    # Flags win over the plan's own options.
    options = loaded.plan.setdefault("options", {})
    for key, value in (("start", start), ("end", end), ("timeout", args.timeout)):
        if value is not None:
            options[key] = value

    reporter = RunReporter(logs, loaded, cache if args.cache_steps else None, args.sanitize)
    run_options: dict[str, Any] = {
        "logger": logs.runtime,
        # Job output reaches the terminal through the job logger; the `log` events carry the
        # same lines (and the runtime's retry warnings, which the runtime logger shows).
        "job_logger": logs.job,
        "on_event": reporter,
        "immutable_state": args.immutable,
        "linker": linker_option(args.adaptor, repo_dir(args.repo_dir)),
    }
    if credentials is not None:
        run_options["resolve_credential"] = credentials.__getitem__
    if args.concurrency is not None:
        run_options["concurrency"] = args.concurrency
    return _execute(loaded, state, run_options, credentials, reporter, args, logs)


def _execute(
    loaded: LoadedPlan,
    state: Any,
    run_options: dict[str, Any],
    credentials: dict[str, Any] | None,
    reporter: RunReporter,
    args: argparse.Namespace,
    logs: CliLogs,
) -> ExitCode:
    try:
        if args.isolate or ledger_url(args):
            outcome = run_elsewhere(loaded.plan, state, run_options, credentials, args, logs)
            if outcome.reason not in ("success", "fail"):
                return _aborted(outcome.error or {}, reporter.aborted_step, loaded, logs)
            result = outcome.state
        else:
            # States reach the reporter as JSON: decoded only for --log debug, written to
            # the step cache as they are, and not copied at all otherwise.
            result = run(loaded.plan, state, event_states="json", **run_options)
    except StatefnError as error:
        add_adaptor_hint(error, run_options["linker"])
        if args.debug:
            logs.cli.error("Traceback", exc_info=error)
        return _aborted(error.to_dict(), error.step_id, loaded, logs)

    write_state(result, args.output, logs)
    if not reporter.failures:
        return ExitCode.OK
    report_failures(reporter.failures, loaded, logs, "Finished with errors")
    return ExitCode.STEP_FAILED


def _check_limits(args: argparse.Namespace) -> None:
    """A limit given without ``--isolate`` is a usage error: no worker would enforce it."""
    if args.isolate or not args.isolate_limits:
        return
    flags = " and ".join(args.isolate_limits)
    need = "needs" if len(args.isolate_limits) == 1 else "need"
    given = " ".join(f"{flag} {value}" for flag, value in args.isolate_limits.items())
    raise CliError(
        f"{flags} {need} --isolate (limits are enforced on an engine worker process): "
        f"statefn run {args.path} --isolate {given}",
        ExitCode.USAGE,
    )


# Errors of the user's input (exit 3); a ledger that cannot be opened is one (its URL).
_INVALID_INPUT = {CompileError.name, ValidationError.name, InputError.name, LedgerError.name}


def _aborted(
    record: Mapping[str, Any], step_id: str | None, loaded: LoadedPlan, logs: CliLogs
) -> ExitCode:
    """Report an error that stopped the run; exit 3 for bad input, else 4."""
    if record.get("name") in _INVALID_INPUT:
        logs.fatal(_render_record(record, step_id, loaded))
        return ExitCode.INVALID_INPUT
    report_aborted(record, step_id, loaded, logs, "Run aborted")
    return ExitCode.ABORTED


def report_failures(
    failures: Sequence[tuple[str, Mapping[str, Any]]],
    loaded: LoadedPlan,
    logs: CliLogs,
    ending: str,
) -> None:
    """Show the errors of the steps that failed (step id, error record), then ``ending``
    with how many failed: ``Finished with errors: 2 steps failed (a, b)``."""
    for step_id, record in failures:
        logs.report(_render_record(record, step_id, loaded))
    failed = [step_id for step_id, _ in failures]
    count = f"{len(failed)} step{'s' * (len(failed) != 1)}"
    logs.cli.error(f"{ending}: {count} failed ({', '.join(failed)})")


def report_aborted(
    record: Mapping[str, Any], step_id: str | None, loaded: LoadedPlan, logs: CliLogs, ending: str
) -> None:
    """Show the error that stopped a run (whatever ``--log`` says), then ``ending`` with its
    name: ``Run aborted: OOMError (severity kill)``."""
    logs.fatal(_render_record(record, step_id, loaded))
    logs.cli.error(f"{ending}: {record.get('name')} (severity {record.get('severity')})")


def render_step_error(error: StatefnError, loaded: LoadedPlan) -> str:
    """A runtime error (a ``StatefnError``) as a diagnostic pointing into its job."""
    return _render_record(error.to_dict(), error.step_id, loaded)


def _render_record(record: Mapping[str, Any], step_id: str | None, loaded: LoadedPlan) -> str:
    known = step_id is not None and any(step["id"] == step_id for step in loaded.steps)
    if step_id is None or not known:
        return render_error_record(record, step_id, str(loaded.path), None)
    return render_error_record(
        record, step_id, loaded.source_label(step_id), loaded.source_text(step_id)
    )


def write_state(state: Any, output: str | None, logs: CliLogs) -> None:
    """The final state as JSON: to ``output``, or to stdout without one."""
    try:
        text = orjson.dumps(state, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    except TypeError as error:  # "Recursion limit reached": orjson writes 254 levels
        raise CliError(
            f"The final state cannot be written as JSON ({error}): a job made it nest more "
            "than 254 levels of arrays and objects",
            ExitCode.ABORTED,
        ) from None
    if output is None:
        sys.stdout.write(text.decode() + "\n")
        sys.stdout.flush()
        return
    target = Path(output)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text + b"\n")
    except OSError as error:
        raise CliError(f"Cannot write the output to {output}: {error}") from None
    logs.cli.info(f"Wrote the final state to {output}")


def _check_writable(target: Path) -> None:
    """Fail before the run when ``-o`` names a file that could not be written after it."""
    if target.is_dir():
        raise CliError(f"Cannot write the output to {target}: it is a folder")
    existing = target if target.exists() else target.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() and existing != target:
        raise CliError(f"Cannot write the output to {target}: {existing} is not a folder")
    if not os.access(existing, os.W_OK):
        raise CliError(f"Cannot write the output to {target}: permission denied")


def _mask_secrets(logs: CliLogs, loaded: LoadedPlan, credentials: dict[str, Any] | None) -> None:
    configurations = [step.get("configuration") for step in loaded.steps]
    configurations.append(loaded.plan.get("workflow", {}).get("credentials"))
    configurations.extend((credentials or {}).values())
    for configuration in configurations:
        if isinstance(configuration, dict):
            logs.mask(Masker.for_configuration(configuration))


def _input_state(
    state_path: str | None, start: str | None, cache: StepCache, loaded: LoadedPlan, logs: CliLogs
) -> Any:
    if state_path is not None:
        state = read_data(state_path)
        depth = nesting_depth(state)
        if depth > MAX_INPUT_DEPTH:
            raise CliError(
                f"{state_path}: the state is nested {depth} levels deep; at most "
                f"{MAX_INPUT_DEPTH} levels of arrays and objects are accepted (flatten its "
                "deepest parts, or hold them as strings of JSON)"
            )
        return state
    if start is None:
        return None
    cached = cache.input_for(start, loaded.steps)
    if cached is None:
        return None
    path, state = cached
    logs.cli.info(f"Input of {start}: the cached output in {path}")
    return state


class RunReporter:
    """The run's ``on_event`` handler: progress lines, job output, the step cache, failures."""

    def __init__(
        self, logs: CliLogs, loaded: LoadedPlan, cache: StepCache | None, sanitize: str
    ) -> None:
        self._logs = logs
        self._loaded = loaded
        self._cache = cache
        self._sanitize = sanitize
        self.failures: list[tuple[str, dict[str, Any]]] = []
        """(step id, error record) of each step that ended with a ``fail`` error."""
        self.aborted_step: str | None = None
        """The step whose ``crash`` or ``kill`` error stopped the run, if one did."""

    def __call__(self, name: str, payload: dict[str, Any]) -> None:
        handler = getattr(self, "_on_" + name.replace("-", "_"), None)
        if handler is not None:
            handler(payload)

    def _on_workflow_start(self, payload: dict[str, Any]) -> None:
        steps = len(self._loaded.steps)
        self._logs.cli.debug(f"Running {self._loaded.path} ({steps} step{'s' * (steps != 1)})")

    def _on_job_start(self, payload: dict[str, Any]) -> None:
        step_id = payload["job_id"]
        if self._logs.interactive:
            self._logs.cli.info(f"{self._logs.paint('▸', _CYAN)} {step_id}", extra=_PROGRESS)
        else:
            self._logs.cli.info("started", extra={"job_id": step_id})

    def _on_job_complete(self, payload: dict[str, Any]) -> None:
        step_id, duration = payload["job_id"], _duration(payload.get("duration_ms"))
        if self._logs.interactive:
            mark, took = self._logs.paint("✔", _GREEN), self._logs.paint(duration, _DIM)
            self._logs.cli.info(f"{mark} {step_id} {took}", extra=_PROGRESS)
        else:
            self._logs.cli.info(f"completed in {duration}", extra={"job_id": step_id})
        self._keep(step_id, payload.get("state"))

    def _on_job_error(self, payload: dict[str, Any]) -> None:
        step_id, duration = payload["job_id"], _duration(payload.get("duration_ms"))
        error = payload.get("error") or {}
        summary = f"{error.get('name', 'Error')}: {error.get('message', '')}"
        if self._logs.interactive:
            mark, took = self._logs.paint("✘", _RED), self._logs.paint(duration, _DIM)
            text = f"{mark} {step_id} {took}  {summary}"
            self._logs.cli.info(text, extra=_PROGRESS)
        else:
            self._logs.cli.warning(f"failed in {duration}: {summary}", extra={"job_id": step_id})
        if error.get("severity") == "fail":
            self.failures.append((step_id, error))
        else:
            self.aborted_step = step_id
        self._keep(step_id, payload.get("state"))

    def _on_load_state(self, payload: dict[str, Any]) -> None:
        duration = _duration(payload.get("duration_ms"))
        self._logs.cli.debug(f"Loaded state {payload.get('state_id')} in {duration}")

    def _on_workflow_complete(self, payload: dict[str, Any]) -> None:
        self._logs.cli.info(f"Finished in {_duration(payload.get('duration_ms'))}")

    def _keep(self, step_id: str, state: Any) -> None:
        """``state``: the step's output, as JSON bytes (``event_states="json"``) or decoded."""
        if self._logs.level <= logging.DEBUG and state is not None:
            decoded = orjson.loads(state) if isinstance(state, bytes) else state
            described = describe_state(decoded, self._sanitize)
            if described is not None:
                self._logs.cli.debug(f"output state: {described}", extra={"job_id": step_id})
        if self._cache is not None and state is not None:
            path = self._cache.write(step_id, state)
            self._logs.cli.debug(f"cached output in {path}", extra={"job_id": step_id})


def _duration(milliseconds: Any) -> str:
    if not isinstance(milliseconds, int | float):
        return "?"
    if milliseconds < 1000:
        return f"{milliseconds:.0f}ms"
    return f"{milliseconds / 1000:.2f}s"
