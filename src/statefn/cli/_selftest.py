"""``statefn test``: run a small built-in workflow and print its result.

A check that statefn works on this machine, with nothing to write first: three steps, an
edge condition, the ``common`` adaptor and the ``S`` state reference.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._exits import ExitCode
from ._logs import CliLogs
from ._plans import LoadedPlan
from ._run import RunReporter, render_step_error, write_state

__all__ = ["SELFTEST_PLAN", "selftest_command"]

SELFTEST_PLAN: dict[str, Any] = {
    "workflow": {
        "name": "statefn-test",
        "steps": [
            {
                "id": "start",
                "name": "Make numbers",
                "expression": "fn(lambda state: {**state, 'data': {'numbers': [1, 2, 3, 4]}})",
                "next": {"total": "len(state['data']['numbers']) > 0"},
            },
            {
                "id": "total",
                "name": "Add them up",
                "expression": (
                    "fn(lambda state: {**state, 'data': {'total': sum(state['data']['numbers'])}})\n"
                    "log('the total is', S.data.total)\n"
                ),
            },
        ],
    }
}


def selftest_command(args: argparse.Namespace, logs: CliLogs) -> ExitCode:
    """Run ``SELFTEST_PLAN``; exit 0 when it gives the expected total."""
    from statefn import StatefnError, run

    logs.cli.info("Running a test workflow (statefn test)")
    reporter = RunReporter(logs, _loaded(), None, "none")
    try:
        result = run(SELFTEST_PLAN, logger=logs.runtime, job_logger=logs.job, on_event=reporter)
    except StatefnError as error:
        logs.report(render_step_error(error, _loaded()))
        return ExitCode.ABORTED
    write_state(result, None, logs)
    if not isinstance(result, dict) or result.get("data") != {"total": 10}:
        logs.cli.error("The test workflow ran but did not give the expected total of 10")
        return ExitCode.STEP_FAILED
    logs.cli.info("statefn works: the test workflow gave the expected total of 10")
    return ExitCode.OK


def _loaded() -> LoadedPlan:
    steps = SELFTEST_PLAN["workflow"]["steps"]
    return LoadedPlan(path=Path("statefn-test.json"), plan=SELFTEST_PLAN, steps=steps)
