"""A run inside the engine: what arrives from its worker goes to its caller and its ledger.

``Job.on_frame`` takes each frame a worker sends (events, step inputs, runtime log
records) and hands it on: to the run's handle (``events()``), to the callables given at
submit (``on_event``, ``logger``, ``job_logger``, called in the engine's process) and, when
the engine has a ledger, to the run's ``Recording``; then its events reach the handle, and
``Job.finish`` gives the outcome, once the ledger has committed them.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from .._errors import StepCancelledError
from .._events import init_complete, init_start, job_error, job_start
from .._state import decode
from ._handle import ArrivedEvent, RunHandle, RunOutcome
from ._limits import MB
from ._protocol import NO_FRAME_LIMIT, WITHHELD, Frame, encode_state

if TYPE_CHECKING:
    from ._recorder import Recorder
    from ._supervisor import Worker

__all__ = ["LOCAL_OPTIONS", "STEP_GRACE_S", "Job", "Recording", "queued_fields"]

# Options of ``run`` that are callables: they cannot cross to a worker, and a run's Job calls
# them in the engine's process instead.
LOCAL_OPTIONS = frozenset({"on_event", "logger", "job_logger"})

_log = logging.getLogger("statefn.engine")
_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING}
# How long past its step timeout a step may take to be reported ended by its worker (whose
# runtime ends it at the timeout) before the engine kills the run from outside: C code that
# holds the interpreter lock keeps the worker's own timeout from firing.
STEP_GRACE_S = 1.0


def queued_fields(
    engine_id: str | None, normal: dict[str, Any], state: Any, payload_limit_mb: float
) -> dict[str, Any]:
    """What ``Ledger.run_queued`` records of a run at submit (its configuration left out)."""
    visible = {key: value for key, value in (state or {}).items() if key != "configuration"}
    blob, withheld = encode_state(visible, int(payload_limit_mb * MB))
    return {
        "engine_id": engine_id,
        "plan_id": normal.get("id"),
        "workflow": normal["workflow"].get("name"),
        "input_state": blob,
        "input_withheld": withheld,
    }


def _unconfigured(blob: bytes | None, *, leaves: bool = False) -> bytes | None:
    """``blob`` without the ``configuration`` of its state (of each leaf's, for a result of
    several leaves). Only a run's first input (as the caller gave it) and the states of a
    run with ``state_props_to_remove=[]`` hold it: rare enough that a byte search first
    spares every other state a decode."""
    if blob is None or b'"configuration"' not in blob:
        return blob
    value = decode(blob)
    states = value.values() if leaves and isinstance(value, dict) else [value]
    for state in states:
        if isinstance(state, dict):
            state.pop("configuration", None)
    return orjson.dumps(value)


class Recording:
    """What the ledger learns of one run, written through the engine's ``Recorder``.

    With ``attempt`` (a distributed delivery of a run already in the ledger), every write
    carries it, so that nothing is recorded once another delivery supersedes this one."""

    def __init__(self, recorder: Recorder, run_id: str, attempt: int | None = None) -> None:
        self.recorder = recorder
        self.run_id = run_id
        self.attempt = attempt
        self._fence: dict[str, Any] = {} if attempt is None else {"attempt": attempt}
        # Events name a step by id; the ledger keys step runs (``z``, ``z-1``). With several
        # runs of one step, they end in the order they were queued (oldest first).
        self._open_keys: dict[str, collections.deque[str]] = {}

    def queued(self, **fields: Any) -> Future[None]:
        """Record the run as queued; the future is done once that is committed."""
        return self.recorder.write_confirmed("run_queued", self.run_id, **fields)

    def started(self) -> None:
        if self.attempt is None:
            self.recorder.write("run_started", self.run_id)
        else:
            self.recorder.write(
                "run_started", self.run_id, engine_id=self.recorder.engine_id, **self._fence
            )

    def step_input(self, step_id: str, key: str, blob: bytes | None, withheld: str | None) -> None:
        self._open_keys.setdefault(step_id, collections.deque()).append(key)
        self.recorder.write(
            "step_started", self.run_id, key, step_id,
            input_state=_unconfigured(blob), input_withheld=withheld, **self._fence,
        )  # fmt: skip

    def event(self, event: ArrivedEvent) -> None:
        payload = event.payload
        if event.name in ("job-complete", "job-error"):
            keys = self._open_keys.get(payload["job_id"])
            error = payload.get("error")
            reason = "success"
            if error is not None:
                reason = "cancel" if error.get("name") == "CancelledError" else error["severity"]
            self.recorder.write(
                "step_finished", self.run_id, keys.popleft() if keys else payload["job_id"],
                reason=reason, output_state=_unconfigured(event.blob),
                output_withheld=event.withheld,
                error=error, duration_ms=payload["duration_ms"], mem=payload.get("mem"),
                **self._fence,
            )  # fmt: skip
        elif event.name == "log":
            self.recorder.write(
                "log", self.run_id, step_id=payload.get("job_id"), level=payload["level"],
                message=payload["message"], time=payload["time"], **self._fence,
            )  # fmt: skip

    def finished(
        self,
        outcome: RunOutcome,
        blob: bytes | None,
        withheld: str | None,
        leaves: bool,
        then: Callable[[], None],
    ) -> None:
        self.recorder.write(
            "run_finished", self.run_id, reason=outcome.reason,
            state=_unconfigured(blob, leaves=leaves),
            state_withheld=withheld,
            error=outcome.error, duration_ms=outcome.duration_ms, **self._fence,
        )  # fmt: skip
        self.recorder.then(then)


@dataclass(slots=True)
class OpenStep:
    """A step run that began (its ``input`` frame) and has not ended. ``initialised`` and
    ``announced``: it sent ``init-start`` and ``job-start``. Events of a step whose work
    runs on a worker thread go through the run's event loop, which C code that holds the
    interpreter lock keeps from running: a step held so may never send them. ``began`` is
    when its ``init-start`` came (its timeout counts from there), else its input."""

    step_id: str
    began: float
    initialised: bool = False
    announced: bool = False


@dataclass(eq=False)
class Job:
    """A run inside the engine, from submit to outcome."""

    handle: RunHandle
    frame: list[bytes]  # the run frame's parts, encoded at submit: later changes do not count
    max_blob: int = NO_FRAME_LIMIT  # the largest state the worker may send (state_limit_mb)
    recording: Recording | None = None
    on_event: Callable[[str, dict[str, Any]], Any] | None = None
    logger: logging.Logger | None = None
    job_logger: logging.Logger | None = None
    started: float = 0.0
    deadline: float | None = None
    step_timeout_ms: float | None = None
    open_steps: list[OpenStep] = field(default_factory=list)  # oldest first
    worker: Worker | None = field(default=None, repr=False)

    def on_frame(self, frame: Frame) -> None:
        """Hand on one frame that is not the outcome."""
        head = frame.head
        if frame.kind == "event":
            self._track(head["name"], head["payload"])
            self._on_event(
                ArrivedEvent(
                    head["name"],
                    head["payload"],
                    head["has_state"],
                    frame.blob,
                    head.get("withheld"),
                )
            )
        elif frame.kind == "input":
            self.open_steps.append(OpenStep(head["step_id"], time.monotonic()))
            if self.recording is not None:
                self.recording.step_input(
                    head["step_id"], head["key"], frame.blob, head.get("withheld")
                )
        elif frame.kind == "record" and self.logger is not None:
            self.logger.log(head["level"], head["message"], extra={"job_id": head["job_id"]})

    def _track(self, name: str, payload: dict[str, Any]) -> None:
        if name not in ("init-start", "job-start", "job-complete", "job-error"):
            return
        for at, step in enumerate(self.open_steps):
            if step.step_id != payload["job_id"]:
                continue
            if name == "init-start" and not step.initialised:
                step.initialised, step.began = True, time.monotonic()
            elif name == "job-start" and not step.announced:
                step.announced = True
            elif name in ("job-complete", "job-error"):
                del self.open_steps[at]
            else:
                continue
            return

    def step_deadline(self) -> tuple[float, str] | None:
        """When the open step that began first will be past its timeout and
        ``STEP_GRACE_S``, and its id."""
        oldest = min(self.open_steps, key=lambda step: step.began, default=None)
        if self.step_timeout_ms is None or oldest is None:
            return None
        return oldest.began + self.step_timeout_ms / 1000 + STEP_GRACE_S, oldest.step_id

    def end_open_steps(self, error: dict[str, Any] | None, culprit: str | None = None) -> None:
        """Send a ``job-error`` for each step that began and has not ended (after the events
        it had not sent of ``init-start``, ``init-complete`` and ``job-start``, as the runtime
        announces a step it cancels): the engine ended the run around them (a limit, a
        cancel, a dead worker), and every job-start gets its end (contract section 3). Each
        carries the run's ``error``; with a ``culprit`` step, only that one does, and the
        others a ``StepCancelledError``."""
        cancelled = StepCancelledError(
            "Step cancelled: the run ended (a limit, a cancel or its worker's death) while "
            "this step was running"
        ).to_dict()
        now = time.monotonic()
        for step in self.open_steps:
            took_ms = (now - step.began) * 1000
            missing = [] if step.initialised else [("init-start", init_start(step.step_id))]
            if not step.announced:
                missing += [
                    ("init-complete", init_complete(step.step_id, took_ms)),
                    ("job-start", job_start(step.step_id)),
                ]
            for name, payload in missing:
                self._on_event(ArrivedEvent(name, payload, False, None, None))
            record = error if error is not None and culprit in (None, step.step_id) else cancelled
            payload = job_error(step.step_id, took_ms, record, None, [])
            self._on_event(ArrivedEvent("job-error", payload, True, None, None))
        self.open_steps.clear()

    def _on_event(self, event: ArrivedEvent) -> None:
        if self.recording is None:
            self.handle.add_event(event)
        else:
            # As with the outcome, ``events()`` has an event once the ledger has committed
            # it and everything before it: what a caller was shown survives a crash.
            self.recording.event(event)
            self.recording.recorder.then(functools.partial(self.handle.add_event, event))
        if self.on_event is not None:
            try:
                self.on_event(*event.decoded())
            except Exception:
                _log.exception("on_event raised for %s", event.name)
        if event.name == "log" and self.job_logger is not None:
            payload = event.payload
            self.job_logger.log(
                _LOG_LEVELS.get(payload["level"], logging.ERROR),
                payload["message"],
                extra={"job_id": payload["job_id"]},
            )

    def finish(
        self, outcome: RunOutcome, blob: bytes | None, payload_limit: int, leaves: bool = False
    ) -> None:
        """Give the outcome to the caller, once the ledger (if any) has it. ``leaves``: the
        result is a dict of several leaves' states."""
        if self.recording is None:
            self.handle.finish(outcome)
            return
        withheld = None
        if blob is not None and len(blob) > payload_limit:
            blob, withheld = None, WITHHELD
        self.recording.finished(
            outcome, blob, withheld, leaves, lambda: self.handle.finish(outcome)
        )
