"""statefn: run workflows of Python jobs that pass JSON state from step to step.

    import statefn

    result = statefn.run(plan, state)          # blocking
    result = await statefn.run_async(plan)     # in an event loop

See the contract (plans, options, events, errors) in the docs.
"""

from ._api import run, run_async, validate_plan
from ._compile import CompiledJob, compile_job
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
from ._events import Event

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
