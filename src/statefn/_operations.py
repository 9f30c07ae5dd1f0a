"""Threading state through a step's operations, and sealing what they leave.

``run_operations`` calls each operation with the state the previous one returned (awaiting
async ones), turns whatever job code raised into a ``StatefnError`` through the classifier,
then ``finish`` records a ``fail`` error in ``state["errors"]``, removes the configured keys,
makes the state JSON-safe and checks its size. It runs wherever the step's work runs (a
worker, or inline); it knows nothing of events, timeouts or the graph.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._classify import Classifier
from ._errors import JobRuntimeError, StatefnError, StateTooLargeError
from ._state import State, copy_state, seal

if TYPE_CHECKING:
    from ._compile import OperationInfo

__all__ = ["OperationsOutcome", "StepSettings", "finish", "run_operations"]


@dataclass(slots=True)
class OperationsOutcome:
    """What running a step's operations left: the state (None when the last operation
    returned None: the step produced no state), its JSON, any error, and the targets of the
    edges it follows (evaluated with the step's work, within its time)."""

    state: State | None
    encoded: bytes | None
    error: StatefnError | None
    interrupted: bool = False
    targets: list[str] = field(default_factory=list)


@dataclass(slots=True)
class StepSettings:
    """What ``run_operations`` needs of its step: state rules, the state size limit, and
    where warnings and error records go."""

    immutable: bool
    props_to_remove: tuple[str, ...]
    limit_bytes: int
    warn: Callable[[str], None]
    record: Callable[[StatefnError], dict[str, Any]]
    written: Sequence[OperationInfo] = ()
    """How job source writes each operation (empty for operations given as callables)."""


def _checked(
    result: Any, index: int, operation: Callable[..., Any], settings: StepSettings
) -> State:
    written = settings.written[index] if index < len(settings.written) else None
    described = _describe(operation, written)
    if result is None:
        settings.warn(
            f"Operation {index + 1} ({described}) returned None: passing an empty state {{}} on"
        )
        return {}
    if isinstance(result, dict):
        # A job's own dict class stops here: what the runtime holds is a built-in dict,
        # copied by the built-in method (no method the job defined runs).
        return dict.copy(result)
    raise JobRuntimeError(
        f"TypeError: operation {index + 1} ({described}) returned "
        f"{type(result).__name__}, not a state dict",
        subtype="TypeError",
        fix="Return the state (a dict) from every operation.",
        pos=_position(written),
    )


def _describe(operation: Callable[..., Any], written: OperationInfo | None) -> str:
    """The operation as the job writes it (``fn(lambda state: 1)``, line 3), or its name."""
    if written is not None:
        return f"{written.source.splitlines()[0].strip()}, line {written.line}"
    return getattr(operation, "__qualname__", None) or type(operation).__name__


def _position(written: OperationInfo | None) -> dict[str, Any] | None:
    if written is None:
        return None
    first = written.source.splitlines()[0]
    return {"line": written.line, "column": len(first) - len(first.lstrip()) + 1, "src": first}


async def run_operations(
    operations: Sequence[Callable[..., Any]],
    state: State,
    settings: StepSettings,
    classifier: Classifier,
    abandoned: Callable[[], bool],
    foreign: Callable[[Awaitable[Any]], Awaitable[Any]],
) -> OperationsOutcome:
    """Thread ``state`` through ``operations``, then make the result JSON-safe and sized;
    an operation's awaitable result is awaited through ``foreign`` (the run's scheduler's).

    On a ``fail`` error the returned state is the one the failing operation was given,
    with the error's record in ``state["errors"][step_id]``. When the last operation
    returns None, the step produced no state (as in OpenFn): the outcome's state is None.
    """
    error: StatefnError | None = None
    index = None
    try:
        for index, operation in enumerate(operations):
            if abandoned():
                break
            if settings.immutable:
                state = copy_state(state)
            result = operation(state)
            if type(result) is not dict:
                if inspect.isawaitable(result):
                    result = await foreign(result)
                if result is None and index == len(operations) - 1:
                    return OperationsOutcome(None, None, None)
                result = _checked(result, index, operation, settings)
            state = result
    except KeyboardInterrupt:
        # The user's: handed to the run's thread, which stops the run.
        return OperationsOutcome(state, None, None, interrupted=True)
    except BaseException as raised:  # every outcome of job code is classified, SystemExit too
        error = classifier.classify(raised, index)
    return finish(state, error, settings, classifier)


def finish(
    state: State, error: StatefnError | None, settings: StepSettings, classifier: Classifier
) -> OperationsOutcome:
    """Remove the configured keys, make the state JSON-safe, record a ``fail`` error in
    ``state["errors"]`` and check the size. After a ``crash`` or ``kill`` the state is
    cleaned the same way, for the step's job-error event."""
    for key in settings.props_to_remove:
        state.pop(key, None)
    encoded, unsafe = _sealed(state, classifier)
    if error is not None and error.severity != "fail":
        return OperationsOutcome(state, encoded, error)
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
            f"State exceeds the limit of {mb:.15g}mb",
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
