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
    Diagnostic,
    EdgeConditionError,
    InputError,
    JobError,
    JobRuntimeError,
    RuntimeCrash,
    SecurityError,
    StatefnError,
    StateTooLargeError,
    StepCancelledError,
    StepTimeoutError,
    ValidationError,
)
from ._events import Event

__all__ = [
    "AdaptorError",
    "AdaptorImportError",
    "CompileError",
    "CompiledJob",
    "Diagnostic",
    "EdgeConditionError",
    "Event",
    "InputError",
    "JobError",
    "JobRuntimeError",
    "RuntimeCrash",
    "SecurityError",
    "StateTooLargeError",
    "StatefnError",
    "StepCancelledError",
    "StepTimeoutError",
    "ValidationError",
    "compile_job",
    "run",
    "run_async",
    "validate_plan",
]
