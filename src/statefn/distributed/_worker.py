"""A distributed worker: a Celery worker whose tasks are runs, each run through one engine.

The Celery worker runs ``workers`` threads that share one ``Engine(workers=N)`` on the
ledger, so a run has the engine's isolation and limits, and killing the worker's process
kills the engine and, with it, every run process. A delivery goes:

1. **claim** the run in the ledger: a finished run is a duplicate (acknowledged, nothing
   runs); a run whose live lease another worker holds is sent again later; otherwise the
   delivery takes the next attempt and the lease;
2. **poison**: past ``max_deliveries`` unfinished deliveries the run ends with ``crash``
   (``ExitError``) and its message is dead-lettered;
3. **resume**: the step runs that completed in earlier deliveries are given to the engine
   with their recorded outputs, and do not run again;
4. **run**, renewing the lease; a superseded attempt cancels its run (the ledger refuses
   its writes anyway), and so does a cancel asked through the ledger (``Client.cancel``);
   past the shutdown grace the run is handed back to the broker;
5. **final before ack**: the task returns (and Celery acknowledges) only once the ledger
   holds the run's final reason; a ledger that cannot take it hands the run back instead.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from celery import Task
from celery.exceptions import Reject
from celery.signals import worker_shutting_down

from statefn._errors import ExitError, LedgerError, WorkerStartError
from statefn.engine import Engine, RunHandle, RunOutcome
from statefn.ledger import StaleAttemptError
from statefn.ledger import open as open_ledger

from ._broker import TASK_NAME, check_broker, make_app, publish

__all__ = ["Worker", "WorkerSettings"]

_log = logging.getLogger("statefn.distributed")
# Workers publish outbox messages that stayed unconfirmed this long, this often.
_OUTBOX_AFTER_S = 10.0
_OUTBOX_EVERY_S = 5.0
# A final reason the ledger refused is tried again after these pauses, then handed back.
_FINAL_RETRIES_S = (0.2, 0.5, 1.0, 2.0, 4.0)
# How often a worker looks in the ledger for a cancel of a run it is running.
_CANCEL_POLL_S = 0.5


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker runs: where, how many runs at once, with what limits; ``credentials``
    (credential id to configuration) and ``repo_dir`` (the adaptor repo) go to its engine."""

    broker: str
    ledger: str
    queues: tuple[str, ...] = ("default",)
    workers: int = 2
    memory_limit_mb: float | None = 500
    run_timeout_ms: float | None = 300_000
    grace_s: float = 30.0
    lease_s: float = 15.0
    max_deliveries: int = 3
    visibility_timeout_s: float | None = None
    log_level: str = "INFO"  # of the worker's own log (Celery's and statefn's), on stderr
    credentials: Mapping[str, Any] | None = field(default=None, repr=False)
    repo_dir: Path | None = None


class Worker:
    """One worker host's process: connects to the broker and the ledger, then ``run``."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.app = make_app(
            settings.broker, settings.queues, visibility_timeout_s=settings.visibility_timeout_s
        )
        check_broker(self.app)
        self.ledger = open_ledger(settings.ledger)
        try:
            self.engine = Engine(
                workers=settings.workers,
                ledger=settings.ledger,
                run_timeout_ms=settings.run_timeout_ms,
                memory_limit_mb=settings.memory_limit_mb,
                credentials=settings.credentials,
                repo_dir=settings.repo_dir,
            )
        except BaseException:
            self.ledger.close()
            raise
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{self.engine.id[:8]}"
        self._draining_since: float | None = None
        self._stop = threading.Event()
        worker = self

        @self.app.task(name=TASK_NAME, bind=True)  # type: ignore[untyped-decorator]
        def run(task: Task, run_id: str, body: dict[str, Any]) -> None:
            worker.deliver(task, run_id, body)

    # -- life -------------------------------------------------------------------------------

    def run(self) -> int:
        """Take runs until a signal stops the worker; the Celery worker's exit code."""
        worker_shutting_down.connect(self._shutting_down, weak=False)
        reconciler = threading.Thread(target=self._reconcile, name="statefn-outbox", daemon=True)
        reconciler.start()
        celery_worker = self.app.Worker(
            pool="threads",
            concurrency=self.settings.workers,
            queues=list(self.settings.queues),
            hostname=f"statefn-{os.getpid()}@{socket.gethostname()}",
            without_gossip=True,
            without_mingle=True,
            without_heartbeat=True,
            loglevel=self.settings.log_level,
        )
        try:
            celery_worker.start()
        finally:
            worker_shutting_down.disconnect(self._shutting_down)
            self._stop.set()
            reconciler.join()
            self.engine.close(wait=False)
            self.ledger.close()
        return int(celery_worker.exitcode or 0)

    def _shutting_down(self, **_: Any) -> None:
        _log.info(
            "Shutting down: no new runs; runs in flight have %g s to finish, then go back "
            "to the broker",
            self.settings.grace_s,
        )
        self._draining_since = time.monotonic()

    def _past_grace(self) -> bool:
        since = self._draining_since
        return since is not None and time.monotonic() - since >= self.settings.grace_s

    def _reconcile(self) -> None:
        """Publish the runs whose submitter recorded them but never saw them published."""
        while not self._stop.wait(_OUTBOX_EVERY_S):
            try:
                pending = self.ledger.outbox_pending(older_than_s=_OUTBOX_AFTER_S)
                for run_id, queue, message in pending:
                    if queue in self.settings.queues:
                        publish(self.app, run_id, queue, orjson.loads(message)["body"])
                        self.ledger.outbox_published(run_id)
                        _log.info("Run %s published from the outbox", run_id)
            except Exception as error:
                _log.warning("The outbox could not be published: %s", error)

    # -- one delivery -----------------------------------------------------------------------

    def deliver(self, task: Task, run_id: str, body: dict[str, Any]) -> None:
        """Work on one delivery of run ``run_id`` (see the module's docstring)."""
        try:
            claim = self.ledger.claim(run_id, self.owner, lease_s=self.settings.lease_s)
            if claim.kind == "run" and claim.deliveries > self.settings.max_deliveries:
                self._end_poison(run_id, claim.attempt)
                raise Reject("poison run", requeue=False)
            if claim.kind == "run":
                self._work(run_id, body, claim.attempt)
        except LedgerError as error:
            # Nothing is acknowledged that the ledger has not finished: another delivery will.
            _log.error("Run %s goes back to the broker: %s", run_id, error)
            time.sleep(1.0)  # not at once into the arms of the same unreachable ledger
            raise Reject(str(error), requeue=True) from None
        if claim.kind == "cancelled":
            _log.info("Run %s was cancelled while it waited: ended, not run", run_id)
        elif claim.kind == "unknown":
            _log.error("Run %s is not in the ledger %s: message dropped", run_id, self.ledger.url)
        elif claim.kind == "finished":
            _log.info("Run %s has already ended: a duplicate delivery, dropped", run_id)
        elif claim.kind == "held":
            raise task.retry(countdown=max(1.0, claim.wait_s), max_retries=None)

    def _work(self, run_id: str, body: dict[str, Any], attempt: int) -> None:
        """Run the claimed run to its final reason in the ledger."""
        _log.info("Run %s: attempt %d on %s", run_id, attempt, self.owner)
        completed = self.ledger.completed_steps(run_id)
        try:
            handle = self.engine.submit(
                body["plan"], body["state"], run_id, attempt=attempt, resume=completed,
                **body["options"],
            )  # fmt: skip
        except Exception as error:  # a message this worker cannot run: the run still ends
            failure = WorkerStartError(
                f"The worker could not start the run: {type(error).__name__}: {error}"
            )
            outcome = RunOutcome(run_id, failure.severity, None, failure.to_dict(), 0.0)
        else:
            outcome = self._follow(handle, run_id, attempt)
        self._record_final(run_id, attempt, outcome)

    def _follow(self, handle: RunHandle, run_id: str, attempt: int) -> RunOutcome:
        """Wait for the run, renewing its lease; cancel it if another attempt took it or a
        cancel was asked; hand it back past the shutdown grace."""
        every = self.settings.lease_s / 3
        renew_at = time.monotonic() + every
        while True:
            try:
                return handle.result(timeout=_CANCEL_POLL_S)
            except TimeoutError:
                pass
            if self._past_grace() and self.ledger.release(run_id, attempt):
                handle.cancel()
                handle.result()
                _log.info("Run %s handed back to the broker (shutdown grace over)", run_id)
                raise Reject("shutdown", requeue=True)
            if self._cancel_requested(run_id):
                _log.info("Run %s: cancelled on request; stopping it", run_id)
                handle.cancel()
                return handle.result()
            if time.monotonic() < renew_at:
                continue
            renew_at = time.monotonic() + every
            try:
                held = self.ledger.renew(run_id, attempt, lease_s=self.settings.lease_s)
            except LedgerError as error:
                _log.warning("Run %s: its lease could not be renewed: %s", run_id, error)
                continue
            if not held:
                _log.warning("Run %s: attempt %d was superseded; stopping it", run_id, attempt)
                handle.cancel()
                return handle.result()

    def _cancel_requested(self, run_id: str) -> bool:
        try:
            return self.ledger.cancel_requested(run_id)
        except LedgerError as error:  # asked again at the next poll
            _log.warning("Run %s: the ledger could not say if it was cancelled: %s", run_id, error)
            return False

    def _record_final(self, run_id: str, attempt: int, outcome: RunOutcome) -> None:
        """Return once the ledger holds the run's final reason (the engine's own write, or
        this one), or once another attempt owns the run; else hand the run back."""
        for pause in (*_FINAL_RETRIES_S, None):
            try:
                record = self.ledger.run(run_id)
                if record.reason is not None or record.attempt != attempt:
                    return
                self.ledger.run_finished(
                    run_id,
                    reason=outcome.reason,
                    state=_final_state(outcome.state),
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                    attempt=attempt,
                )
                return
            except StaleAttemptError:
                return
            except LedgerError as error:
                if pause is None:
                    _log.error("Run %s goes back to the broker: %s", run_id, error)
                    raise Reject(str(error), requeue=True) from None
                time.sleep(pause)

    def _end_poison(self, run_id: str, attempt: int) -> None:
        limit = self.settings.max_deliveries
        error = ExitError(
            f"The run's worker died during each of its {limit} deliveries: the run is dead-lettered"
        )
        _log.error("Run %s: %s", run_id, error)
        self.ledger.run_finished(
            run_id, reason="crash", state=None, error=error.to_dict(), duration_ms=None,
            attempt=attempt,
        )  # fmt: skip


def _final_state(state: Any) -> bytes | None:
    """The outcome's state as the ledger stores it: JSON, without its configuration."""
    if state is None:
        return None
    if isinstance(state, dict):
        state = {key: value for key, value in state.items() if key != "configuration"}
    return orjson.dumps(state)
