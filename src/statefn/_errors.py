"""The error tree.

Every error statefn raises or records is a ``StatefnError``. Each class carries the type
string of the contract (``name``) and a ``severity``:

    StatefnError
    ├── ValidationError        crash  the plan is invalid
    ├── CompileError           crash  job source does not compile or breaks the job rules
    ├── InputError             crash  bad arguments to ``run``
    ├── JobRuntimeError        fail   "RuntimeError": TypeError, KeyError, ... in job code
    ├── RuntimeCrash           crash  NameError, SyntaxError, RecursionError, MemoryError
    ├── JobError               fail   any other exception raised by job code
    ├── AdaptorError           fail   an exception escaped from adaptor code
    ├── AdaptorImportError     crash  "ImportError": an adaptor could not be linked
    ├── SecurityError          kill   job code tried something the sandbox forbids
    ├── StepTimeoutError       kill   "TimeoutError": a step ran past its timeout
    ├── StateTooLargeError     kill   output state over the size limit
    ├── EdgeConditionError     crash  an edge condition raised
    ├── StepCancelledError     kill   "CancelledError": the run ended while the step ran
    │                                 (reported in its job-error event, never raised)
    │   the engine's (section 8 of the contract), recorded as a run's outcome:
    ├── RunTimeoutError        kill   "TimeoutError": the whole run ran past its limit
    ├── OOMError               kill   the run's process went over the memory limit
    ├── ExitError              crash  the run's worker process died
    ├── CredentialLoadError    exception  a credential the run names could not be loaded
    ├── WorkerStartError       exception  no worker process could be started for the run
    ├── LostError              exception  the engine that held the run is gone
    └── LedgerError            exception  the ledger cannot be opened, read or written

``fail`` errors are written to ``state["errors"][step_id]`` and the workflow goes on;
``crash`` and ``kill`` stop the run and are raised from ``run``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

TYPE_CHECKING = False  # typing's, without importing typing: see statefn/__init__.py
if TYPE_CHECKING:
    from typing import Any, ClassVar, Literal

    Severity = Literal["fail", "crash", "kill", "exception"]

__all__ = [
    "AdaptorError",
    "AdaptorImportError",
    "CompileError",
    "CredentialLoadError",
    "Diagnostic",
    "EdgeConditionError",
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
    "step_context",
]


class StatefnError(Exception):
    """Base of every error statefn raises or records."""

    name: ClassVar[str] = "StatefnError"
    severity: ClassVar[Severity] = "crash"

    def __init__(
        self,
        message: str,
        *,
        step_id: str | None = None,
        pos: dict[str, Any] | None = None,
        fix: str | None = None,
        details: dict[str, Any] | None = None,
        subtype: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.step_id = step_id
        self.pos = pos
        self.fix = fix
        self.details = details
        self.subtype = subtype

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """The error record, as written to ``state["errors"]`` and sent in events."""
        record: dict[str, Any] = {
            "source": "runtime",
            "name": self.name,
            "severity": self.severity,
            "message": self.message,
        }
        for key in ("subtype", "details", "pos", "fix"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        return record


class ValidationError(StatefnError):
    """The plan is invalid; nothing ran."""

    name = "ValidationError"


class Diagnostic:
    """One problem found while compiling job source."""

    __slots__ = ("column", "line", "message", "src")

    def __init__(self, message: str, line: int, column: int, src: str) -> None:
        self.message = message
        self.line = line
        self.column = column
        self.src = src

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "line": self.line, "column": self.column, "src": self.src}

    def __repr__(self) -> str:
        return f"Diagnostic({self.line}:{self.column} {self.message!r})"


class CompileError(StatefnError):
    """Job source does not compile or breaks the rules of the job language.

    ``problems`` holds the first ``PROBLEMS_KEPT`` problems (in source order); the message
    and ``details["problems_not_listed"]`` say how many more there were: a job with
    thousands (one line of generated code) would otherwise make a record, and a report, of
    hundreds of megabytes."""

    name = "CompileError"
    PROBLEMS_KEPT = 50

    def __init__(
        self, problems: list[Diagnostic], *, step_id: str | None = None, fix: str | None = None
    ) -> None:
        count = len(problems)
        problems = problems[: self.PROBLEMS_KEPT]
        first = problems[0]
        lines = [f"line {p.line}, column {p.column}: {p.message}" for p in problems]
        message = lines[0] if count == 1 else f"{count} problems: " + "; ".join(lines)
        details: dict[str, Any] = {"problems": [p.to_dict() for p in problems]}
        if count > len(problems):
            message += f"; and {count - len(problems)} more"
            details["problems_not_listed"] = count - len(problems)
        super().__init__(
            message,
            step_id=step_id,
            pos={"line": first.line, "column": first.column, "src": first.src},
            fix=fix,
            details=details,
        )
        self.problems = problems


class InputError(StatefnError):
    """Bad arguments were given to ``run``."""

    name = "InputError"


class JobRuntimeError(StatefnError):
    """Job code raised a lookup, type, value or arithmetic error (type string "RuntimeError")."""

    name = "RuntimeError"
    severity = "fail"


class RuntimeCrash(StatefnError):
    """Job code raised NameError, SyntaxError, RecursionError or MemoryError."""

    name = "RuntimeCrash"


class JobError(StatefnError):
    """Job code raised any other exception."""

    name = "JobError"
    severity = "fail"


class AdaptorError(StatefnError):
    """An exception escaped from adaptor code; ``details`` holds its JSON-safe fields."""

    name = "AdaptorError"
    severity = "fail"


class AdaptorImportError(StatefnError):
    """An adaptor could not be found, loaded, or is not on the whitelist (type "ImportError")."""

    name = "ImportError"


class SecurityError(StatefnError):
    """Job code tried something the sandbox forbids."""

    name = "SecurityError"
    severity = "kill"


class StepTimeoutError(StatefnError):
    """A step ran past its timeout (type string "TimeoutError")."""

    name = "TimeoutError"
    severity = "kill"


class StateTooLargeError(StatefnError):
    """A step's output state is larger than the state limit."""

    name = "StateTooLargeError"
    severity = "kill"


class StepCancelledError(StatefnError):
    """The run ended (its end step finished) while this step was still running."""

    name = "CancelledError"
    severity = "kill"


class EdgeConditionError(StatefnError):
    """An edge condition raised while being evaluated."""

    name = "EdgeConditionError"


class RunTimeoutError(StatefnError):
    """The whole run ran past the engine's ``run_timeout_ms`` (type string "TimeoutError")."""

    name = "TimeoutError"
    severity = "kill"


class OOMError(StatefnError):
    """The run's worker process went over the engine's memory limit."""

    name = "OOMError"
    severity = "kill"


class ExitError(StatefnError):
    """The run's worker process exited or was killed before the run ended."""

    name = "ExitError"


class CredentialLoadError(StatefnError):
    """A credential that the run's steps name could not be loaded by the engine."""

    name = "CredentialLoadError"
    severity = "exception"


class WorkerStartError(StatefnError):
    """The engine could not start a worker process for the run."""

    name = "WorkerStartError"
    severity = "exception"


class LostError(StatefnError):
    """The run was left unfinished by an engine that is gone."""

    name = "LostError"
    severity = "exception"


class LedgerError(StatefnError):
    """The run ledger cannot be opened, read or written (its URL is shown masked)."""

    name = "LedgerError"
    severity = "exception"


@contextmanager
def step_context(step_id: str) -> Iterator[None]:
    """Attach ``step_id`` to any StatefnError raised inside the block that lacks one."""
    try:
        yield
    except StatefnError as error:
        if error.step_id is None:
            error.step_id = step_id
        raise
