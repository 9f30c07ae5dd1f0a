"""Running one side of a workload in a fresh process and reading what it measured."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .workloads import Side, SideKind

__all__ = ["CLI_EXPECTED", "CLI_PLAN", "Programs", "SideFailed", "run_side"]

HERE = Path(__file__).resolve().parent
# OpenFn's engine workloads take minutes: 500 runs at about 2 runs per second.
CHILD_TIMEOUT_S = 1800

# The one-step workflow `statefn run` is given, and the output it must print.
CLI_PLAN = {
    "workflow": {
        "steps": [{"id": "only", "expression": "fn(lambda state: {**state, 'data': {'ok': True}})"}]
    }
}
CLI_EXPECTED = {"data": {"ok": True}}


class SideFailed(Exception):
    """A side's process failed, or its output was not what the work should produce."""


@dataclass(frozen=True)
class Programs:
    """Where the programs the sides run are found."""

    python: Path  # the venv's interpreter, with statefn installed
    statefn: Path  # the venv's `statefn` command
    node: str
    openfn_dir: Path  # the npm folder holding @openfn/runtime and @openfn/engine-multi
    work_dir: Path  # scratch space (the CLI's plan file, Python's bytecode cache)

    def environment(self) -> dict[str, str]:
        """The children's environment: Python caches bytecode, as an installed package has.

        With PYTHONDONTWRITEBYTECODE (set on some development machines) every process
        would compile statefn's source again, which no installed copy does. The cache goes
        to the scratch directory, not beside the sources.
        """
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(self.work_dir / "pycache")
        return env


def command(side: Side, programs: Programs) -> list[str]:
    params = dict(side.params)
    workload = str(params.pop("workload", ""))
    match side.kind:
        case SideKind.STATEFN | SideKind.STATEFN_ENGINE:
            script = str(HERE / side.kind.value)
            return [str(programs.python), script, workload, json.dumps(params)]
        case SideKind.OPENFN | SideKind.OPENFN_ENGINE:
            script = str(HERE / side.kind.value)
            node_flags = ["--experimental-vm-modules", "--no-warnings"]
            return [
                programs.node,
                *node_flags,
                script,
                str(programs.openfn_dir),
                workload,
                json.dumps(params),
            ]
        case SideKind.STATEFN_CLI:
            plan = programs.work_dir / "plan.json"
            if not plan.exists():
                plan.write_text(json.dumps(CLI_PLAN))
            return [str(programs.statefn), "run", str(plan)]
        case SideKind.STATEFN_HELP:
            return [str(programs.statefn), "--help"]
        case SideKind.PYTHON_PASS:
            return [str(programs.python), "-c", "pass"]


def run_side(side: Side, programs: Programs) -> dict[str, float]:
    """Run `side` once in a fresh process: its own measurements plus wall time and peak RSS."""
    argv = command(side, programs)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, stdout=out, stderr=err, cwd=programs.work_dir, env=programs.environment()
        )
        killer = threading.Timer(CHILD_TIMEOUT_S, process.kill)
        killer.start()
        # wait4 gives this child's own peak RSS, which RUSAGE_CHILDREN (the maximum over
        # every child so far) cannot.
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        killer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        detail = stderr.strip().splitlines()[-1:] or [f"exit code {process.returncode}"]
        raise SideFailed(f"{side.label}: {detail[0]}")
    measured = read_output(side, stdout)
    # ru_maxrss is in kilobytes on Linux.
    return {**measured, "wall_ms": wall * 1000, "peak_rss_mb": usage.ru_maxrss / 1024}


def read_output(side: Side, stdout: str) -> dict[str, float]:
    if side.kind is SideKind.PYTHON_PASS:
        return {}
    if side.kind is SideKind.STATEFN_HELP:
        if not stdout.startswith("usage: statefn"):
            raise SideFailed(f"{side.label}: printed {stdout[:200]!r}, expected the usage")
        return {}
    try:
        output: Any = json.loads(stdout)
    except ValueError as error:
        raise SideFailed(f"{side.label}: output is not JSON ({error}): {stdout[:200]!r}") from None
    if side.kind is SideKind.STATEFN_CLI:
        if output != CLI_EXPECTED:
            raise SideFailed(f"{side.label}: printed {output!r}, expected {CLI_EXPECTED!r}")
        return {}
    if not isinstance(output, dict):
        raise SideFailed(f"{side.label}: printed {output!r}, expected an object")
    return {key: float(value) for key, value in output.items()}
