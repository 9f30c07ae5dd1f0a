"""statefn: run workflows of Python jobs that pass JSON state from step to step.

    import statefn

    result = statefn.run(plan, state)          # blocking
    result = await statefn.run_async(plan)     # in an event loop

See the contract (plans, options, events, errors) in the docs.

The runtime is imported on first use of ``run``, ``compile_job`` or ``Event``, so that
importing ``statefn`` (and starting the command line) stays cheap; the errors are plain
classes and are imported at once.
"""

from __future__ import annotations

import importlib as _importlib

from ._errors import (
    AdaptorError,
    AdaptorImportError,
    CompileError,
    CredentialLoadError,
    Diagnostic,
    EdgeConditionError,
    ExitError,
    InputError,
    JobError,
    JobRuntimeError,
    LedgerError,
    LostError,
    OOMError,
    RuntimeCrash,
    RunTimeoutError,
    SecurityError,
    StatefnError,
    StateTooLargeError,
    StepCancelledError,
    StepTimeoutError,
    ValidationError,
    WorkerStartError,
)

# typing.TYPE_CHECKING (type checkers know it by its name) without importing typing, which
# `statefn --help` has no other use for; not one of statefn's names.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._api import run, run_async, validate_plan
    from ._compile import CompiledJob, compile_job
    from ._events import Event
del TYPE_CHECKING

# Public name -> the private module that defines it, imported when the name is first used.
_LAZY = {
    "CompiledJob": "._compile",
    "Event": "._events",
    "compile_job": "._compile",
    "run": "._api",
    "run_async": "._api",
    "validate_plan": "._api",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'statefn' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AdaptorError",
    "AdaptorImportError",
    "CompileError",
    "CompiledJob",
    "CredentialLoadError",
    "Diagnostic",
    "EdgeConditionError",
    "Event",
    "ExitError",
    "InputError",
    "JobError",
    "JobRuntimeError",
    "LedgerError",
    "LostError",
    "OOMError",
    "RunTimeoutError",
    "RuntimeCrash",
    "SecurityError",
    "StateTooLargeError",
    "StatefnError",
    "StepCancelledError",
    "StepTimeoutError",
    "ValidationError",
    "WorkerStartError",
    "compile_job",
    "run",
    "run_async",
    "validate_plan",
]
