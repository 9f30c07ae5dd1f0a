"""The supervisor: one thread, one loop, a few verbs.

Each turn it waits (on the template's control socket, every worker's socket and a wake-up
pipe) for at most the time to the next deadline, then:

- *reads* what arrived: frames from workers (events, inputs, outcomes) and from the
  template (a worker forked, a worker exited);
- *obeys* the commands callers queued (submit, cancel, close);
- *murders* the runs past their deadline or over the memory limit (their whole process
  group gets ``SIGKILL``; the outcome is given at once, not when the process is reaped);
- *manages*: starts the template if it is down, forks spare workers up to the target,
  hands queued runs to idle workers.

A worker that dies before it sent its outcome ends its run with ``ExitError``, built from
the exit status the template reports. Nothing else in the engine touches a process.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .._errors import (
    ExitError,
    OOMError,
    RunTimeoutError,
    StatefnError,
    StepTimeoutError,
    WorkerStartError,
)
from ._handle import REASONS, RunHandle, RunOutcome
from ._limits import MB, WorkerGroups, resident_bytes
from ._protocol import FILES_SPACE, Frame, FrameReader, decode_packet, encode_frame, received_files

if TYPE_CHECKING:
    from ._job import Job

__all__ = ["EngineSettings", "Supervisor", "Worker"]

_log = logging.getLogger("statefn.engine")
_WATCH_S = 0.025  # how often busy workers' memory is read
_RESTART_S = 1.0  # the least time between two attempts to start the template
# Reads of a dead worker's socket that another process holds open, for what the worker sent
# before it died (16 reads of up to 4 MB: more than a socket buffer holds).
_DRAIN_READS = 16
_TIDY_S = 0.01  # how often processes left by ended workers are looked for (and killed)
# How long a run whose worker's socket closed waits for the template's report of its exit
# status. The report usually comes within milliseconds and ends the wait at once; on a
# loaded machine it was seen to take over 1 s (a segfault then read "exited before the run
# ended"), so the wait is only a bound for a template that never reports.
_EXIT_WAIT_S = 5.0
_SOCKET_BUFFER = 4 * MB  # asked of the kernel; it grants at most net.core.[rw]mem_max
# What comes with a worker's bytes: the kernel's word on who sent them (pid, uid, gid), and
# the files its large blobs travel in.
_ANCILLARY_SPACE = socket.CMSG_SPACE(struct.calcsize("3i")) + FILES_SPACE


@dataclass(slots=True)
class EngineSettings:
    workers: int
    run_timeout_ms: float | None
    memory_limit_mb: float | None
    payload_limit_mb: float
    isolation: str
    python: str
    base_dir: Path
    environment: dict[str, str]
    wrap: Callable[[list[str]], list[str]] | None = None
    worker_nice: int = 0


@dataclass(eq=False)
class Worker:
    """One worker process, known by three pids. ``pid``: its pid here, the leader of its
    process group, which murder kills (learnt from the credentials the kernel attaches to
    what it sends, as the template may live in another PID namespace); ``watched``: the
    process whose memory is watched (under strict isolation, the run's own process, which
    introduces itself the same way); ``inner_pid``: its pid as the template reports it."""

    token: int
    sock: socket.socket
    pid: int = 0
    watched: int = 0
    inner_pid: int = 0
    job: Job | None = None
    reader: FrameReader = field(default_factory=FrameReader)
    status: dict[str, Any] | None = None  # from the template's "exited"
    closed_at: float | None = None  # its socket closed before its run ended


def _exit_error(status: dict[str, Any] | None) -> ExitError:
    if status is None:
        return ExitError("The run's worker process exited before the run ended")
    if "signal" in status:
        name = signal.Signals(status["signal"]).name
        return ExitError(f"The run's worker process was killed by signal {name}")
    return ExitError(f"The run's worker process exited with code {status['code']}")


def _kill(pid: int) -> None:
    """SIGKILL the worker's process group: the worker and whatever it started.

    Only the group: a worker is known by its pid once it has said hello, after it made its
    own group, and a pid still in use as a group id is not given to a new process, while a
    lone pid, once reaped, may be."""
    if pid <= 0:  # not known yet: 0 would be the engine's own process group
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class Supervisor:
    """Owns the template, the workers and the runs in flight; see the module docstring."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self._commands: collections.deque[tuple[str, Any]] = collections.deque()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._template: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._template_ready = False
        self._template_error: str | None = None
        self._last_start = -_RESTART_S
        self.ready = threading.Event()  # set once the template answered (or failed)
        self._tokens = 0
        self._pending: dict[int, Worker] = {}  # by token: forked, not said hello yet
        self._forking: dict[int, Worker] = {}  # by token: the template has not said "forked"
        self._idle: collections.deque[Worker] = collections.deque()
        self._busy: dict[int, Worker] = {}
        self._by_inner_pid: dict[int, Worker] = {}
        self._queued: collections.deque[Job] = collections.deque()
        self._closing = False
        self._next_watch = 0.0
        self._next_tidy = 0.0
        self._groups = WorkerGroups(settings.base_dir.name)
        self._thread = threading.Thread(target=self._main, name="statefn-engine", daemon=True)
        self._thread.start()

    # -- the callers' side (any thread) ----------------------------------------------------

    def command(self, verb: str, argument: Any = None) -> None:
        self._commands.append((verb, argument))
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"!")

    def join(self) -> None:
        self._thread.join()

    def problem(self) -> str | None:
        """What stops runs from starting now, or ``None`` (read without a lock: a snapshot)."""
        if not self._thread.is_alive():
            return "The engine's supervisor has stopped"
        if not self._template_ready:
            return self._template_error or "The worker processes are starting"
        return None

    # -- the loop --------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            self._start_template()
            while not (self._closing and not self._queued and not self._busy):
                for key, _ in self._selector.select(self._wait_s()):
                    self._read(key.fileobj, key.data)
                self._obey()
                self._murder()
                self._manage()
        except Exception:
            _log.exception("The engine's supervisor failed")
            for job in [*self._queued, *(w.job for w in self._busy.values() if w.job)]:
                self._end(job, "exception", ExitError("The engine's supervisor failed"))
        finally:
            self._shutdown()

    def _wait_s(self) -> float:
        now = time.monotonic()
        waits = [1.0]
        if self._busy:
            waits.append(self._next_watch - now)
            waits.extend(
                w.job.deadline - now for w in self._busy.values() if w.job and w.job.deadline
            )
            waits.extend(
                step_deadline[0] - now
                for w in self._busy.values()
                if w.job and (step_deadline := w.job.step_deadline()) is not None
            )
            waits.extend(
                w.closed_at + _EXIT_WAIT_S - now for w in self._busy.values() if w.closed_at
            )
        if self._queued and not self._template_ready:
            waits.append(self._last_start + _RESTART_S - now)
        if self._groups.ending:
            waits.append(self._next_tidy - now)
        return max(0.0, min(waits))

    # -- read ------------------------------------------------------------------------------

    def _read(self, source: Any, worker: Worker | None) -> None:
        if source == self._wake_read:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_read, 4096)
        elif worker is None:
            self._read_control()
        elif worker.sock.fileno() != -1:  # not closed earlier in this turn (a dead worker's)
            self._read_worker(worker)

    def _read_control(self) -> None:
        assert self._control is not None
        try:
            packet = self._control.recv(65536)
        except OSError:
            packet = b""
        if not packet:
            self._template_gone()
            return
        head = decode_packet(packet)
        kind = head["t"]
        if kind == "ready":
            self._template_ready = True
            self.ready.set()
        elif kind == "forked":
            # Its hello, on its own socket, may have come first: it may be idle, or busy.
            worker = self._forking.pop(head["token"], None)
            if worker is not None:
                worker.inner_pid = head["pid"]
                self._by_inner_pid[worker.inner_pid] = worker
        elif kind == "exited":
            worker = self._by_inner_pid.pop(head["pid"], None)
            if worker is not None:
                worker.status = head
                if worker.closed_at is not None:
                    self._worker_died(worker)
                elif worker.job is not None:
                    # Its socket is still open: a process the run started holds it. What the
                    # worker sent before it died is read now; unless that held the outcome,
                    # the run ends here rather than when that process lets go.
                    for _ in range(_DRAIN_READS):
                        if worker.job is None or not self._read_worker(worker, wait=False):
                            break
                    self._worker_died(worker)

    def _read_worker(self, worker: Worker, wait: bool = True) -> bool:
        """Read what the worker sent (``wait=False``: what has arrived, if anything) and act
        on its frames; whether anything was read."""
        try:
            data, ancillary, flags, _address = worker.sock.recvmsg(
                4 * MB, _ANCILLARY_SPACE, 0 if wait else socket.MSG_DONTWAIT
            )
        except BlockingIOError:
            return False
        except OSError:
            data, ancillary, flags = b"", [], 0
        sender = 0  # who sent these bytes, in the kernel's words (one sender per read)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                sender = struct.unpack_from("i", payload)[0]
        if not data:
            self._selector.unregister(worker.sock)
            worker.sock.close()
            worker.reader.close()
            if worker.job is None:  # a worker died before its run: forget it, fork another
                self._pending.pop(worker.token, None)
                with contextlib.suppress(ValueError):
                    self._idle.remove(worker)
            elif worker.status is not None:
                self._worker_died(worker)
            else:
                worker.closed_at = time.monotonic()
            return False
        try:
            for frame in worker.reader.feed(data, received_files(ancillary, flags)):
                job = worker.job
                if frame.kind == "hello":
                    if self._pending.pop(worker.token, None) is not None:
                        if sender <= 0:
                            raise ValueError("a hello the kernel did not name a sender for")
                        worker.pid = worker.watched = sender
                        self._groups.admit(worker.pid)
                        self._idle.append(worker)
                    elif job is not None and self._introduces(worker):
                        worker.watched = sender
                elif job is None:
                    raise ValueError(f"a {frame.kind!r} frame from a worker without a run")
                elif frame.kind == "outcome":
                    self._outcome(job, frame)
                else:
                    job.on_frame(frame)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            # Not our protocol: whatever runs in that worker is not to be trusted; it, and
            # only it, is ended.
            problem = f"{type(error).__name__}: {error}"
            self._fail_worker(worker, f"The run's worker process broke the protocol ({problem})")
        return True

    def _introduces(self, worker: Worker) -> bool:
        """Whether a hello from a busy worker is its run's own process introducing itself:
        once, under strict isolation only. Any other is ignored, so that no process a run
        starts can have the engine watch it in place of the run."""
        return self.settings.isolation == "strict" and worker.watched == worker.pid

    def _outcome(self, job: Job, frame: Frame) -> None:
        head = frame.head
        reason, error, leaves = head["reason"], head["error"], head["leaves"]
        if reason not in REASONS or not isinstance(error, dict | None) or type(leaves) is not bool:
            raise ValueError(f"an outcome frame that is not one: {head!r:.200}")
        self._end(job, reason, error, frame.blob, leaves=leaves)

    # -- obey ------------------------------------------------------------------------------

    def _obey(self) -> None:
        while self._commands:
            verb, argument = self._commands.popleft()
            if verb == "submit":
                if self._closing:
                    self._end(argument, "exception", WorkerStartError("The engine is closed"))
                else:
                    self._queued.append(argument)
            elif verb == "cancel":
                self._cancel(argument)
            elif verb == "close":
                self._closing = True
                if not argument:  # close(wait=False): cancel what is left
                    for job in [*self._queued, *(w.job for w in self._busy.values() if w.job)]:
                        self._cancel(job.handle)

    def _cancel(self, handle: RunHandle) -> None:
        for job in self._queued:
            if job.handle is handle:
                self._queued.remove(job)
                self._end(job, "cancel", None)
                return
        for worker in list(self._busy.values()):
            if worker.job is not None and worker.job.handle is handle:
                self._end(worker.job, "cancel", None)
                return

    # -- murder ----------------------------------------------------------------------------

    def _murder(self) -> None:
        now = time.monotonic()
        for worker in list(self._busy.values()):
            job = worker.job
            if job is None:
                continue
            if worker.closed_at is not None and now - worker.closed_at >= _EXIT_WAIT_S:
                self._worker_died(worker)
            elif job.deadline is not None and now >= job.deadline:
                limit = self.settings.run_timeout_ms
                self._end(job, "kill", RunTimeoutError(f"Run took longer than {limit:g} ms"))
            elif (overdue := job.step_deadline()) is not None and now >= overdue[0]:
                # Its worker did not end the step at its timeout: it is held in C code.
                step_id = overdue[1]
                timeout = StepTimeoutError(
                    f"Job took longer than {job.step_timeout_ms:g}ms to complete",
                    step_id=step_id,
                )
                job.end_open_steps(timeout.to_dict(), culprit=step_id)
                self._end(job, "kill", timeout)
        limit_mb = self.settings.memory_limit_mb
        if limit_mb and self._busy and now >= self._next_watch:
            self._next_watch = now + _WATCH_S
            for worker in list(self._busy.values()):
                resident = self._resident(worker)
                if worker.job is not None and resident is not None and resident > limit_mb * MB:
                    message = f"Run exceeded the memory limit of {limit_mb:g} MB"
                    self._end(worker.job, "kill", OOMError(message))

    def _resident(self, worker: Worker) -> int | None:
        """The memory a run holds: the resident size of the process it runs in, or what
        its worker's memory cgroup was charged (the processes it forked included, what
        they share with the template not), whichever is larger."""
        sizes = (resident_bytes(worker.watched), self._groups.memory(worker.pid))
        known = [size for size in sizes if size is not None]
        return max(known) if known else None

    # -- manage ----------------------------------------------------------------------------

    def _manage(self) -> None:
        if self._groups.ending and time.monotonic() >= self._next_tidy:
            self._next_tidy = time.monotonic() + _TIDY_S
            self._groups.tidy()  # processes of ended workers that are not gone yet
        if self._closing and not self._queued:
            return
        if not self._template_ready:
            if time.monotonic() - self._last_start >= _RESTART_S and self._template is None:
                self._start_template()
            if not self._template_ready and self._template_error is not None:
                while self._queued:
                    job = self._queued.popleft()
                    self._end(job, "exception", WorkerStartError(self._template_error))
            return
        while self._queued and self._idle and len(self._busy) < self.settings.workers:
            self._dispatch(self._queued.popleft(), self._idle.popleft())
        while len(self._idle) + len(self._pending) < self.settings.workers:
            self._fork()

    def _fork(self) -> None:
        assert self._control is not None
        ours, theirs = socket.socketpair()
        for end in (ours, theirs):  # big states cross in a few large writes, not hundreds
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        # Before the worker exists: the kernel names the sender only of what is sent after
        # this, and the worker's hello may come before send_fds has even returned.
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._tokens += 1
        try:
            socket.send_fds(
                self._control,
                [encode_frame({"t": "fork", "token": self._tokens})],
                [theirs.fileno()],
            )
        except OSError:
            ours.close()
            self._template_gone()
            return
        finally:
            theirs.close()
        worker = Worker(self._tokens, ours)
        self._pending[self._tokens] = worker
        self._forking[self._tokens] = worker
        self._selector.register(ours, selectors.EVENT_READ, worker)

    def _dispatch(self, job: Job, worker: Worker) -> None:
        try:
            for part in job.frame:
                worker.sock.sendall(part)
        except OSError:
            _kill(worker.pid)
            self._queued.appendleft(job)
            return
        job.frame = []  # the worker has it; the engine need not hold the plan and state
        worker.reader.max_blob = job.max_blob
        worker.job = job
        job.worker = worker
        job.started = time.monotonic()
        if self.settings.run_timeout_ms:
            job.deadline = job.started + self.settings.run_timeout_ms / 1000
        self._busy[worker.token] = worker
        if job.recording is not None:
            job.recording.started()

    # -- endings ---------------------------------------------------------------------------

    def _release(self, pid: int) -> None:
        """Let the cgroup of worker ``pid`` (killed) go: it is tidied ``_TIDY_S`` later,
        when the worker is likely gone and only what escaped its group may be left."""
        if not self._groups.ending:
            self._next_tidy = time.monotonic() + _TIDY_S
        self._groups.release(pid)

    def _worker_died(self, worker: Worker) -> None:
        if worker.job is not None:
            self._end(worker.job, "crash", _exit_error(worker.status))

    def _fail_worker(self, worker: Worker, message: str) -> None:
        if worker.job is not None:
            self._end(worker.job, "crash", ExitError(message))
            return
        # Before its run: it is given none, and another is forked in its place.
        self._pending.pop(worker.token, None)
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        self._forget(worker)

    def _end(
        self,
        job: Job,
        reason: str,
        error: StatefnError | dict[str, Any] | None,
        blob: bytes | None = None,
        *,
        leaves: bool = False,
    ) -> None:
        """End ``job``: free (and kill) its worker, hand over its outcome, then remove the
        run's work directory (the outcome does not wait for the file system)."""
        worker = job.worker
        if worker is not None:
            job.worker = None
            worker.job = None
            self._busy.pop(worker.token, None)
            _kill(worker.pid)
            self._release(worker.pid)
            if worker.closed_at is None and worker.sock.fileno() != -1:
                self._selector.unregister(worker.sock)
                worker.sock.close()
            worker.reader.close()
        record = error.to_dict() if isinstance(error, StatefnError) else error
        job.end_open_steps(record)
        duration = (time.monotonic() - job.started) * 1000 if job.started else 0.0
        outcome = RunOutcome(job.handle.id, reason, None, record, duration, blob=blob)
        job.finish(outcome, blob, int(self.settings.payload_limit_mb * MB), leaves)
        if worker is not None:
            shutil.rmtree(self.settings.base_dir / job.handle.id, ignore_errors=True)

    # -- the template ----------------------------------------------------------------------

    def _start_template(self) -> None:
        self._last_start = time.monotonic()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        settings = self.settings
        template_settings = {
            "control_fd": theirs.fileno(),
            "engine_pid": 0 if settings.wrap else os.getpid(),
            "memory_limit_mb": settings.memory_limit_mb,
            "isolation": settings.isolation,
            "worker_nice": settings.worker_nice,
        }
        command = [
            settings.python, "-I", "-m", "statefn.engine._template",
            orjson.dumps(template_settings).decode(),
        ]  # fmt: skip
        if settings.wrap is not None:
            command = settings.wrap(command)
        errors = open(settings.base_dir / "template.err", "wb")  # noqa: SIM115 (the child keeps it)
        try:
            self._template = subprocess.Popen(
                command,
                pass_fds=[theirs.fileno()],
                env=settings.environment,
                cwd=settings.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,
            )
        except OSError as error:
            ours.close()
            self._template_error = f"The worker processes could not start: {error}"
            self.ready.set()
            return
        finally:
            theirs.close()
            errors.close()
        self._control = ours
        self._template_error = None
        self._selector.register(ours, selectors.EVENT_READ, None)

    def _template_gone(self) -> None:
        """The template exited: its workers died with it; so did their runs."""
        if self._control is not None:
            self._selector.unregister(self._control)
            self._control.close()
            self._control = None
        if self._template is not None:
            code = self._template.wait()
            self._template = None
            if not self._template_ready:
                tail = (self.settings.base_dir / "template.err").read_text(errors="replace")
                detail = tail.strip().splitlines()[-1] if tail.strip() else f"exit code {code}"
                self._template_error = f"The worker processes could not start: {detail}"
        self._template_ready = False
        self.ready.set()
        for worker in [*self._pending.values(), *self._idle]:
            self._forget(worker)
        self._pending.clear()
        self._forking.clear()
        self._idle.clear()
        for worker in list(self._busy.values()):
            worker.status = {"signal": signal.SIGKILL}
            self._worker_died(worker)

    def _forget(self, worker: Worker) -> None:
        """Kill a worker that has no run, and let go of its socket."""
        _kill(worker.pid)
        self._release(worker.pid)
        if worker.sock.fileno() != -1:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(worker.sock)
            worker.sock.close()
        worker.reader.close()

    def _shutdown(self) -> None:
        for worker in [*self._pending.values(), *self._idle, *self._busy.values()]:
            self._forget(worker)
        if self._control is not None:
            self._control.close()
        if self._template is not None:
            try:
                self._template.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._template.kill()
                self._template.wait()
        self._groups.close()
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
        self.ready.set()
