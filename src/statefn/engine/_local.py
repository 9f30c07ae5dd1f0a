"""A run in the caller's own process, recorded on a ledger (``statefn run --ledger``).

No isolation and no limits: it is the runtime core's ``run``, with the ledger told what a
worker would have told it. The frames a worker would send go straight to the run's
``Job``, so the ledger gets the same records (step inputs included) either way.
"""

from __future__ import annotations

import uuid
from typing import Any

from .._api import validate_plan
from .._errors import InputError
from .._options import parse_options
from ..ledger import Ledger
from ..ledger import open as open_ledger
from ._child import Channel, execute
from ._handle import RunHandle, RunOutcome
from ._job import LOCAL_OPTIONS, Job, Recording, queued_fields
from ._protocol import Frame
from ._recorder import Recorder

__all__ = ["run_recorded"]


class _JobChannel(Channel):
    """Frames handed to the run's ``Job`` in this process instead of through a socket."""

    def __init__(self, job: Job, payload_limit_mb: float) -> None:
        super().__init__(payload_limit_mb)
        self.job = job
        self.outcome: tuple[dict[str, Any], Any, bytes | None] | None = None

    def deliver(self, head: dict[str, Any], state: Any, blob: bytes | None) -> None:
        if head["t"] == "outcome":
            self.outcome = (head, state, blob)
        else:
            self.job.on_frame(Frame(head, blob))


def run_recorded(
    plan: Any,
    state: Any = None,
    *,
    ledger: str | Ledger,
    run_id: str | None = None,
    credentials: dict[str, Any] | None = None,
    payload_limit_mb: float = 10,
    **run_options: Any,
) -> RunOutcome:
    """Run ``plan`` in this process and record it on ``ledger`` (a URL, or a ledger that
    this call closes when it is done); return its outcome.

    ``run_options`` are those of ``Engine.submit``; ``credentials`` maps the credential ids
    the plan names to configurations.
    """
    local = {name: run_options.pop(name) for name in LOCAL_OPTIONS & set(run_options)}
    settings = parse_options({**run_options, **local})
    normal = validate_plan(plan, default_step_id=settings.default_step_id)
    if state is not None and not isinstance(state, dict):
        raise InputError(f"the input state must be a dict, got {type(state).__name__}")
    engine_id = uuid.uuid4().hex
    recorder = Recorder(open_ledger(ledger) if isinstance(ledger, str) else ledger, engine_id)
    try:
        handle = RunHandle(run_id or str(uuid.uuid4()), lambda handle: None)
        recording = Recording(recorder, handle.id)
        job = Job(handle, [], recording=recording, **local)
        recording.queued(**queued_fields(engine_id, normal, state, payload_limit_mb))
        recording.started()
        channel = _JobChannel(job, payload_limit_mb)
        message = {
            "plan": normal,
            "state": state,
            "options": run_options,
            "credentials": credentials or {},
            "record_inputs": True,
            "memory_limit_mb": None,
        }
        try:
            execute(channel, message)
        finally:
            if channel.outcome is not None:
                head, result, blob = channel.outcome
                outcome = RunOutcome(
                    handle.id, head["reason"], result, head["error"], head["duration_ms"]
                )
                job.finish(outcome, blob, channel.limit, head["leaves"])
    finally:
        recorder.close()
    return handle.result(timeout=0)
