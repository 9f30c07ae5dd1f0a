"""``Client``: submit runs to distributed workers and wait for their outcomes.

Submission goes through an outbox: the run (``queued``) and its broker message are recorded
in one ledger commit, then the message is published and marked published. A submitter that
dies between the two loses nothing: workers publish what stays pending in the outbox (see
``_worker``). A message published twice is harmless, since a run's lease admits one
delivery at a time and a finished run is never run again.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson
from celery import Celery

from statefn._compile import compile_job
from statefn._errors import LedgerError, step_context
from statefn.engine import RunOutcome
from statefn.engine._engine import checked_submission
from statefn.engine._job import queued_fields
from statefn.ledger import CancelResult, Ledger, RunLookupError, RunRecord, StateWithheldError
from statefn.ledger import open as open_ledger

from ._broker import check_broker, make_app, publish

__all__ = ["Client", "outcome_of"]

_log = logging.getLogger("statefn.distributed")
_PAYLOAD_LIMIT_MB = 10
_POLL_S = (0.02, 0.5)  # the first and the longest wait between two reads of the ledger
_READ_RETRIES = 5  # reads of the ledger that may fail in a row while waiting


def outcome_of(ledger: Ledger, record: RunRecord) -> RunOutcome:
    """The outcome of a finished run, as the ledger recorded it."""
    try:
        state = ledger.state(record.run_id)
    except StateWithheldError:
        state = None
    assert record.reason is not None
    return RunOutcome(record.run_id, record.reason, state, record.error, record.duration_ms or 0.0)


class Client:
    """Submits runs through ``broker`` (``amqp://…`` or ``redis://…``) to the workers that
    share the ledger at ``ledger`` (``postgresql://…``; SQLite only on one host).

    Raises ``BrokerError`` or ``LedgerError`` (URLs masked) when either cannot be reached.
    """

    def __init__(self, broker: str, ledger: str) -> None:
        self._broker = broker
        self._ledger = open_ledger(ledger)
        self._apps: dict[str, Celery] = {}
        try:
            self._app("default")
        except BaseException:
            self._ledger.close()
            raise

    def _app(self, queue: str) -> Celery:
        app = self._apps.get(queue)
        if app is None:
            app = make_app(self._broker, [queue])
            check_broker(app)
            self._apps[queue] = app
        return app

    @property
    def ledger(self) -> Ledger:
        """The ledger this client records and reads runs in."""
        return self._ledger

    def submit(
        self,
        plan: Any,
        state: Any = None,
        run_id: str | None = None,
        queue: str = "default",
        **run_options: Any,
    ) -> str:
        """Record the run and send it to ``queue``; its id.

        ``run_options`` are those the engine takes across a process (``timeout_ms``,
        ``state_limit_mb``, ...). An invalid plan, state or option raises ``InputError``,
        ``ValidationError`` or (a job that does not compile) ``CompileError`` before
        anything is recorded. If the broker does not take the message now, the run
        stays in the ledger's outbox and a worker publishes it later.
        """
        normal, _ = checked_submission(plan, state, dict(run_options), {})
        for step in normal["workflow"]["steps"]:
            if isinstance(step.get("expression"), str):
                with step_context(step["id"]):
                    compile_job(step["expression"], step.get("adaptors") or ())
        run_id = run_id or str(uuid.uuid4())
        body = {"plan": normal, "state": state, "options": run_options}
        message = orjson.dumps({"run_id": run_id, "queue": queue, "body": body})
        fields = queued_fields(None, normal, state, _PAYLOAD_LIMIT_MB)
        app = self._app(queue)
        self._ledger.run_queued(run_id, outbox=(queue, message), **fields)
        try:
            publish(app, run_id, queue, body)
        except Exception as error:
            _log.warning(
                "Run %s is recorded but the broker did not take it (%s): a worker will "
                "publish it from the outbox",
                run_id,
                error,
            )
            return run_id
        self._ledger.outbox_published(run_id)
        return run_id

    def wait(self, run_id: str, timeout: float | None = None) -> RunOutcome:
        """The run's outcome, read from the ledger once the run has its final reason
        (``TimeoutError`` after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _POLL_S[0]
        failures = 0
        while True:
            try:
                record = self._ledger.run(run_id)
                failures = 0
            except RunLookupError:
                raise
            except LedgerError:
                # A dropped connection fails one read and is made again for the next.
                failures += 1
                if failures > _READ_RETRIES:
                    raise
                time.sleep(pause)
                continue
            if record.reason is not None:
                return outcome_of(self._ledger, record)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"Run {run_id} has not ended after {timeout} s")
            time.sleep(pause)
            pause = min(pause * 2, _POLL_S[1])

    def cancel(self, run_id: str) -> CancelResult:
        """Cancel a submitted run, through the ledger: ``cancelled`` (it had not started,
        or its worker is gone: it has ended with reason ``cancel``), ``requested`` (its
        worker stops it within about a second and records ``cancel``), ``finished`` (it had
        already ended; nothing changes), ``local`` (not a distributed run) or ``unknown``.
        """
        return self._ledger.cancel(run_id)

    def close(self) -> None:
        """Close the connections to the broker and the ledger."""
        for app in self._apps.values():
            app.close()
        self._ledger.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
