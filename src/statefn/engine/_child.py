"""One run inside a worker process: receive it, run it through the core, report it.

Everything the run produces leaves as frames on the worker's socket, in order: each event
as the core emits it (its state as a blob, withheld when over the payload limit), each step
run's input state when the engine records runs, runtime log records, and last the outcome.
The worker then exits; the engine removes its temporary directory.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
import threading
import time
from typing import Any

from .._api import _as_plan, run_here
from .._errors import OOMError, RuntimeCrash, StatefnError, WorkerStartError
from .._execute import Run
from .._options import parse_options
from ._limits import MB
from ._namespaces import enter_run_namespaces, needs_network
from ._protocol import WITHHELD, encode_state, read_frame, send_frame

__all__ = ["Channel", "execute", "serve", "warm_up"]

# A run may log this much text, in this many lines (each, however short, an event the engine
# keeps for the run's handle and a row of its ledger); later lines are dropped, after one
# that says so, so that a job printing in a loop cannot flood the engine and its ledger.
_LOG_LIMIT = 64 * 1024 * 1024
_LOG_LINES_LIMIT = 100_000
_LOG_DROPPED = "The run logged more than 64 MB or 100,000 lines: its further log lines are dropped"


class Channel:
    """Where a run's frames go: the worker's socket, or (in the caller's process) its job.

    ``send`` encodes a frame's state as its blob, withheld over the payload limit unless
    ``whole``; ``deliver`` (of each kind of channel) takes the frame from there."""

    def __init__(self, payload_limit_mb: float) -> None:
        self.limit = int(payload_limit_mb * MB)
        # The result, as workflow-complete carried it, so that the outcome that follows
        # (nothing runs in between) does not encode it again.
        self._result: Any = None
        self._result_blob: bytes | None = None

    def send(
        self,
        head: dict[str, Any],
        state: Any = None,
        *,
        has_state: bool = False,
        whole: bool = False,
    ) -> None:
        blob = None
        if has_state and state is not None:
            if state is self._result and head["t"] == "outcome":
                blob = self._result_blob  # encoded for workflow-complete, unchanged since
            else:
                blob = encode_state(state, sys.maxsize)[0]
            if head.get("name") == "workflow-complete":
                self._result, self._result_blob = state, blob
            if not whole and blob is not None and len(blob) > self.limit:
                blob, head["withheld"] = None, WITHHELD
        self.deliver(head, state, blob)

    def deliver(self, head: dict[str, Any], state: Any, blob: bytes | None) -> None:
        raise NotImplementedError


class _SocketChannel(Channel):
    """The worker's socket, shared by the run's thread and its step workers."""

    def __init__(self, sock: socket.socket, payload_limit_mb: float) -> None:
        super().__init__(payload_limit_mb)
        self.sock = sock
        self._lock = threading.Lock()

    def deliver(self, head: dict[str, Any], state: Any, blob: bytes | None) -> None:
        with self._lock:
            send_frame(self.sock, head, blob)


class _RecordHandler(logging.Handler):
    """Runtime log records (``Starting step …``) sent to the engine."""

    def __init__(self, channel: Channel) -> None:
        super().__init__(logging.DEBUG)
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        self.channel.send(
            {
                "t": "record",
                "level": record.levelno,
                "message": record.getMessage(),
                "job_id": getattr(record, "job_id", None),
            }
        )


def _logger(channel: Channel) -> logging.Logger:
    logger = logging.Logger("statefn", logging.DEBUG)
    logger.addHandler(_RecordHandler(channel))
    logger.propagate = False
    return logger


def _reason(run: Run, result: Any) -> str:
    """``fail`` when a leaf's state holds an error, else ``success``."""
    leaves = [result] if len(run.leaf_keys) == 1 else list((result or {}).values())
    for state in leaves:
        errors = state.get("errors") if isinstance(state, dict) else None
        if isinstance(errors, dict) and errors:
            return "fail"
    return "success"


def _failure(error: BaseException, memory_limit_mb: float | None) -> tuple[str, dict[str, Any]]:
    """The reason and error record of a run that raised."""
    if isinstance(error, RuntimeCrash) and error.subtype == "MemoryError" and memory_limit_mb:
        # Under the engine a MemoryError is the address-space backstop refusing memory.
        error = OOMError(
            f"Run exceeded the memory limit of {memory_limit_mb:g} MB", step_id=error.step_id
        )
    if isinstance(error, StatefnError):
        return error.severity, error.to_dict()
    crash = RuntimeCrash(f"{type(error).__name__}: {error}", subtype=type(error).__name__)
    return "crash", crash.to_dict()


def _outcome(
    reason: str, error: dict[str, Any] | None, duration_ms: float, *, leaves: bool = False
) -> dict[str, Any]:
    """The head of the outcome frame; ``leaves``: the result holds several leaves' states."""
    return {
        "t": "outcome",
        "reason": reason,
        "error": error,
        "duration_ms": duration_ms,
        "leaves": leaves,
    }


def execute(channel: Channel, message: dict[str, Any]) -> None:
    """Run the run ``message`` describes through the core, reporting on ``channel``.

    Ctrl-C (in a recorded run in the caller's own process) is reported as ``cancel`` and
    raised again."""
    started = time.perf_counter()
    credentials: dict[str, Any] = message["credentials"]

    log_bytes = log_lines = 0

    def on_event(name: str, payload: dict[str, Any]) -> None:
        nonlocal log_bytes, log_lines
        if name == "log":
            was_over = log_bytes > _LOG_LIMIT or log_lines >= _LOG_LINES_LIMIT
            log_bytes += len(payload["message"])
            log_lines += 1
            if was_over:
                return
            if log_bytes > _LOG_LIMIT or log_lines == _LOG_LINES_LIMIT:
                payload = {**payload, "level": "warn", "message": _LOG_DROPPED}
        has_state = "state" in payload
        rest = {key: value for key, value in payload.items() if key != "state"}
        channel.send(
            {"t": "event", "name": name, "payload": rest, "has_state": has_state},
            payload.get("state"),
            has_state=has_state,
        )

    def observe(step_id: str, key: str, state: Any) -> None:
        if triggers.get(step_id):  # a trigger has no job: no events, nothing to record
            return
        head = {"t": "input", "key": key, "step_id": step_id}
        channel.send(head, state, has_state=message["record_inputs"])

    triggers: dict[str, bool] = {}
    options = dict(message["options"])
    options.update(
        # Events hand over each step's state as the JSON its output was sealed into: it
        # becomes the frame's blob as it is, never decoded and encoded again.
        event_states="json",
        on_event=on_event,
        logger=_logger(channel),
        resolve_credential=credentials.get,
    )

    def set_up(run: Run) -> None:
        triggers.update((step.id, step.is_trigger) for step in run.plan.steps.values())
        run.step_observer = observe
        run.owns_input = message.get("input_owned", False)
        run.completed = dict(message.get("resume") or {})

    record: dict[str, Any] | None = None
    interrupted = leaves = False
    try:
        settings = parse_options(options)
        plan = _as_plan(message["plan"], settings.default_step_id)
        run, result = run_here(plan, settings, message["state"], message.get("run_id"), set_up)
        reason = _reason(run, result)
        leaves = len(run.leaf_keys) > 1
    except KeyboardInterrupt:
        reason, result, interrupted = "cancel", None, True
    except BaseException as error:  # every ending becomes the run's outcome
        reason, record, result = *_failure(error, message["memory_limit_mb"]), None
    duration = (time.perf_counter() - started) * 1000
    outcome = _outcome(reason, record, duration, leaves=leaves)
    channel.send(outcome, result, has_state=True, whole=True)
    if interrupted:
        raise KeyboardInterrupt


def _prepare(message: dict[str, Any], settings: dict[str, Any]) -> bool:
    """The run's private working directory and, under strict isolation, its namespaces
    (``True``: the run now goes on in a process of its own, in a new PID namespace)."""
    repo = message.get("engine_repo")
    if repo is not None and not os.path.isdir(repo):
        raise FileNotFoundError(f"the engine's adaptor repo {repo} is not a folder")
    work_dir = message["work_dir"]
    os.makedirs(work_dir, mode=0o700, exist_ok=True)
    os.chdir(work_dir)
    os.environ["TMPDIR"] = work_dir
    tempfile.tempdir = work_dir
    if settings.get("isolation") == "strict":
        linker = message["options"].get("linker") or {}
        enter_run_namespaces(work_dir, network=needs_network(message["plan"], linker))
        return True
    return False


class _NoChannel(Channel):
    """The warm-up run's frames: encoded (that is part of warming up), then dropped."""

    def deliver(self, head: dict[str, Any], state: Any, blob: bytes | None) -> None:
        return None


_WARM_UP = {
    "plan": {"workflow": {"steps": [{"id": "warm-up", "expression": "fn(lambda state: state)"}]}},
    "state": {"data": {"n": 1}},
    "options": {},
    "credentials": {},
    "record_inputs": True,
    "memory_limit_mb": None,
}


def warm_up() -> None:
    """Run a fixed, trivial workflow whose frames go nowhere. Nothing of any caller's is in
    it. Run in the template, it leaves the code every run runs specialised and its caches
    filled, for every worker to share; run in a worker before its run arrives, it pays for
    the pages every run touches (a forked process pays for the memory it shares with the
    template page by page as it first writes to it, and reference counts are writes)
    before the run, not during it."""
    execute(_NoChannel(sys.maxsize), _WARM_UP)


def serve(sock: socket.socket, settings: dict[str, Any]) -> None:
    """Warm up (see ``warm_up``), then wait for this worker's one run, run it, report it."""
    warm_up()
    frame = read_frame(sock)
    if frame is None or frame.kind != "run":
        return
    message = frame.head
    message["input_owned"] = True  # decoded from the run frame, for this run alone
    channel = _SocketChannel(sock, message["payload_limit_mb"])
    try:
        if _prepare(message, settings):
            channel.send({"t": "hello"})  # the engine watches this process's memory now
    except Exception as error:
        problem = WorkerStartError(f"The run's worker could not be prepared: {error}")
        channel.send(_outcome("exception", problem.to_dict(), 0.0))
        return
    execute(channel, message)
