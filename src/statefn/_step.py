"""Running one step's operations, and classifying what went wrong.

``run_operations`` runs on a step worker (see ``_worker``): it threads state through the
operations, awaits async ones, and turns whatever was raised into a ``StatefnError``
through one ladder of ``except`` clauses. Which code raised decides between job and
adaptor errors: the innermost traceback frame that belongs to job code or to an adaptor.
"""

from __future__ import annotations

import inspect
import os
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ._errors import (
    AdaptorError,
    JobError,
    JobRuntimeError,
    RuntimeCrash,
    StatefnError,
    StateTooLargeError,
)
from ._state import State, copy_state, seal

__all__ = [
    "JOB_FILENAME_PREFIX",
    "Classifier",
    "OperationsOutcome",
    "StepSettings",
    "finish",
    "run_operations",
]

JOB_FILENAME_PREFIX = "<statefn-job"

_RUNTIME_ERRORS = (LookupError, ArithmeticError, TypeError, ValueError, AttributeError)
_CRASH_ERRORS = (NameError, SyntaxError, RecursionError, MemoryError)

_LIBRARY_DIRS = tuple(
    {
        os.path.join(sysconfig.get_paths()[key], "")
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
    }
    | {os.path.join(os.path.dirname(__file__), "")}
)
_ADAPTORS_DIR = os.path.join(os.path.dirname(__file__), "adaptors", "")


def _is_library_file(filename: str) -> bool:
    return filename.startswith(_LIBRARY_DIRS) or filename.startswith("<frozen ")


def _chain(tb: TracebackType | None) -> list[TracebackType]:
    chain = []
    while tb is not None:
        chain.append(tb)
        tb = tb.tb_next
    return chain


def _column(tb: TracebackType) -> int:
    """The 1-based column of the instruction a traceback entry stopped at."""
    positions = list(tb.tb_frame.f_code.co_positions())
    index = tb.tb_lasti // 2
    start = positions[index][2] if 0 <= index < len(positions) else None
    return (start or 0) + 1


@dataclass(slots=True)
class Classifier:
    """Knows which frames are job code and which are adaptors, for one step."""

    step_id: str
    is_adaptor_file: Callable[[str], bool]
    job_sources: dict[str, Sequence[str]]

    def _origin(self, error: BaseException) -> tuple[str, dict[str, Any] | None]:
        """("job" or "adaptor", the position in job source when job source raised)."""
        for tb in reversed(_chain(error.__traceback__)):
            filename = tb.tb_frame.f_code.co_filename
            if filename.startswith(JOB_FILENAME_PREFIX):
                return "job", self._position(filename, tb)
            if filename.startswith(_ADAPTORS_DIR) or self.is_adaptor_file(filename):
                return "adaptor", None
            if not _is_library_file(filename):
                return "job", None
        return "job", None

    def _position(self, filename: str, tb: TracebackType) -> dict[str, Any] | None:
        lines = self.job_sources.get(filename)
        line = tb.tb_lineno
        if lines is None or line is None or not 0 < line <= len(lines):
            return None
        return {"line": line, "column": _column(tb), "src": lines[line - 1]}

    def classify(self, error: BaseException) -> StatefnError:
        """The ``StatefnError`` that stands for ``error``, raised by an operation."""
        origin, pos = self._origin(error)
        if isinstance(error, StatefnError):
            classified = error
        elif origin == "adaptor":
            classified = AdaptorError(
                _message(error), subtype=type(error).__name__, details=_json_fields(error)
            )
        else:
            classified = _job_error(error)
        if classified.step_id is None:
            classified.step_id = self.step_id
        if classified.pos is None and pos is not None:
            classified.pos = pos
        return classified


def _message(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _job_error(error: BaseException) -> StatefnError:
    """The table of contract section 4, for exceptions raised by job code."""
    name = type(error).__name__
    if isinstance(error, _CRASH_ERRORS):
        return RuntimeCrash(_message(error), subtype=name)
    if isinstance(error, _RUNTIME_ERRORS):
        return JobRuntimeError(_message(error), subtype=name)
    if isinstance(error, Exception):
        return JobError(str(error) or name)
    # SystemExit, GeneratorExit and the like: job code never stops the host process.
    return JobError(_message(error))


def _json_fields(error: BaseException) -> dict[str, Any] | None:
    fields = {}
    for key, value in vars(error).items():
        if key.startswith("_"):
            continue
        try:
            fields[key] = copy_state(value, key)
        except StatefnError:
            continue
    return fields or None


@dataclass(slots=True)
class OperationsOutcome:
    """What running a step's operations left: the state, its JSON, and any error."""

    state: State
    encoded: bytes | None
    error: StatefnError | None
    interrupted: bool = False


@dataclass(slots=True)
class StepSettings:
    immutable: bool
    props_to_remove: tuple[str, ...]
    limit_bytes: int
    warn: Callable[[str], None]
    record: Callable[[StatefnError], dict[str, Any]]


def _checked(
    result: Any, index: int, operation: Callable[..., Any], settings: StepSettings
) -> State:
    if result is None:
        settings.warn(
            f"Operation {index + 1} ({_describe(operation)}) returned None: "
            "passing an empty state {} on"
        )
        return {}
    if isinstance(result, dict):
        return result
    raise JobRuntimeError(
        f"TypeError: operation {index + 1} ({_describe(operation)}) returned "
        f"{type(result).__name__}, not a state dict",
        subtype="TypeError",
        fix="Return the state (a dict) from every operation.",
    )


def _describe(operation: Callable[..., Any]) -> str:
    return getattr(operation, "__qualname__", None) or type(operation).__name__


async def run_operations(
    operations: Sequence[Callable[..., Any]],
    state: State,
    settings: StepSettings,
    classifier: Classifier,
    abandoned: Callable[[], bool],
) -> OperationsOutcome:
    """Thread ``state`` through ``operations``, then make the result JSON-safe and sized.

    On a ``fail`` error the returned state is the one the failing operation was given,
    with the error's record in ``state["errors"][step_id]``.
    """
    error: StatefnError | None = None
    try:
        for index, operation in enumerate(operations):
            if abandoned():
                break
            if settings.immutable:
                state = copy_state(state)
            result = operation(state)
            if type(result) is not dict:
                if inspect.isawaitable(result):
                    result = await result
                result = _checked(result, index, operation, settings)
            state = result
    except KeyboardInterrupt:
        # The user's: handed to the run's thread, which stops the run.
        return OperationsOutcome(state, None, None, interrupted=True)
    except BaseException as raised:  # every outcome of job code is classified, SystemExit too
        error = classifier.classify(raised)
    return finish(state, error, settings, classifier)


def finish(
    state: State, error: StatefnError | None, settings: StepSettings, classifier: Classifier
) -> OperationsOutcome:
    """Remove the configured keys, make the state JSON-safe, record a ``fail`` error in
    ``state["errors"]`` and check the size."""
    if error is not None and error.severity != "fail":
        return OperationsOutcome(state, None, error)
    for key in settings.props_to_remove:
        state.pop(key, None)
    encoded, unsafe = _sealed(state, classifier)
    error = error or unsafe
    if error is not None:
        errors = state.get("errors")
        if not isinstance(errors, dict):
            errors = state["errors"] = {}
        errors[classifier.step_id] = settings.record(error)
        encoded = seal(state)
    if len(encoded) > settings.limit_bytes:
        mb = settings.limit_bytes / (1024 * 1024)
        too_large = StateTooLargeError(
            f"State exceeds the limit of {mb:g}mb",
            step_id=classifier.step_id,
            details={"bytes": len(encoded)},
        )
        return OperationsOutcome(state, None, too_large)
    return OperationsOutcome(state, encoded, error)


def _sealed(state: State, classifier: Classifier) -> tuple[bytes, StatefnError | None]:
    """Seal ``state``; a top-level key holding a value JSON cannot hold is dropped, and the
    first such problem is returned as the step's error."""
    first: StatefnError | None = None
    while True:
        try:
            return seal(state), first
        except StatefnError as unsafe:
            first = first or classifier.classify(unsafe)
            path = str((unsafe.details or {}).get("path", "state"))
            key = path.removeprefix("state.").split(".")[0].split("[")[0]
            if path == "state" or key not in state:
                state.clear()
            else:
                del state[key]
