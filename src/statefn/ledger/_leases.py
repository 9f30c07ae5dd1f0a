"""Leases of distributed runs: which delivery of a run may work on it, and its outbox.

A distributed run (one submitted with a queue) starts at attempt 0. Each delivery that a
worker accepts *claims* the run: the attempt goes up by one and the worker holds a lease
(owner and expiry) that it renews while it works. Every write the worker then makes carries
its attempt (see ``Ledger._fence``), so a delivery that a later one superseded records
nothing more. ``deliveries`` counts the claims that did not end the run, for poison runs; a
run handed back on a graceful shutdown gives its delivery back.

A run may be cancelled from anywhere (``cancel``). One that no worker holds ends at once;
for one that a worker holds the cancel is noted, the worker sees the note
(``cancel_requested``) and stops its run, and a delivery that finds the note after its
holder died ends the run without running it.

The outbox keeps each run's broker message from the commit that queued the run until a
publish is confirmed, so a submitter that dies in between loses nothing: a worker publishes
what stays pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from ._clock import now
from ._reads import LedgerReader
from ._records import FINAL_REASONS

__all__ = ["CancelResult", "Claim", "Leases"]

_OPEN = "status IN ('queued', 'started')"

CancelResult = Literal["cancelled", "requested", "finished", "local", "unknown"]
"""What ``Leases.cancel`` did: see there."""


@dataclass(frozen=True)
class Claim:
    """What a delivery found: ``run`` (it now holds ``attempt``), ``finished`` (the run has
    its final reason), ``cancelled`` (a cancel was asked while an earlier delivery held the
    run: it has now ended with reason ``cancel``, unrun), ``held`` (another worker's lease
    runs ``wait_s`` more seconds) or ``unknown`` (no such run)."""

    kind: Literal["run", "finished", "cancelled", "held", "unknown"]
    attempt: int
    deliveries: int
    wait_s: float = 0.0


class Leases(LedgerReader):
    """The ledger's writes for distributed workers."""

    def claim(self, run_id: str, owner: str, *, lease_s: float) -> Claim:
        """Claim the run for ``owner`` for ``lease_s`` seconds, unless it is finished or its
        lease has not expired: its holder may be alive (a broker that gives a message out
        again does not prove its last holder dead), and may be this same worker, which the
        broker handed the message again after a reconnection."""
        with self._db.transaction():
            rows = self._db.rows(
                "SELECT status, attempt, deliveries, lease_owner, lease_until, "
                f"cancel_requested_at FROM runs WHERE run_id = ?{self._row_lock('UPDATE')}",
                (run_id,),
            )
            if not rows:
                return Claim("unknown", 0, 0)
            status, attempt, deliveries, holder, until, cancel_requested = rows[0]
            if status in FINAL_REASONS:
                return Claim("finished", attempt, deliveries)
            if holder is not None and until > now():
                left = datetime.fromisoformat(until) - datetime.fromisoformat(now())
                return Claim("held", attempt, deliveries, wait_s=left.total_seconds())
            if cancel_requested is not None:
                self._end_cancelled(run_id)
                return Claim("cancelled", attempt + 1, deliveries)
            self._db.execute(
                "UPDATE runs SET attempt = ?, deliveries = ?, lease_owner = ?, lease_until = ? "
                "WHERE run_id = ?",
                (attempt + 1, deliveries + 1, owner, now(minus_s=-lease_s), run_id),
            )
            return Claim("run", attempt + 1, deliveries + 1)

    def cancel(self, run_id: str) -> CancelResult:
        """Cancel distributed run ``run_id``, from any host that reaches the ledger.

        ``cancelled``: no worker held the run (not yet delivered, handed back, or its
        holder's lease expired), so it has ended now with reason ``cancel``; its attempt
        moves on, so that a holder that was only cut off records nothing more, and its
        broker message leaves the outbox. ``requested``: a worker holds the run; the cancel
        is noted, and the worker stops the run (its engine records ``cancel``) or, if the
        worker dies first, the next delivery ends it unrun. ``finished``: it had already
        ended. ``local``: no broker carries it (an engine's own run, which only that
        engine can cancel). ``unknown``: there is no such run.
        """
        with self._db.transaction():
            rows = self._db.rows(
                "SELECT status, queue, lease_owner, lease_until FROM runs "
                f"WHERE run_id = ?{self._row_lock('UPDATE')}",
                (run_id,),
            )
            if not rows:
                return "unknown"
            status, queue, holder, until = rows[0]
            if status in FINAL_REASONS:
                return "finished"
            if queue is None:
                return "local"
            if holder is not None and until > now():
                self._db.execute(
                    "UPDATE runs SET cancel_requested_at = ? WHERE run_id = ?", (now(), run_id)
                )
                return "requested"
            self._end_cancelled(run_id)
            return "cancelled"

    def cancel_requested(self, run_id: str) -> bool:
        """Whether a cancel of ``run_id`` was asked (``cancel``) while a worker held it."""
        rows = self._db.rows("SELECT cancel_requested_at FROM runs WHERE run_id = ?", (run_id,))
        return bool(rows) and rows[0][0] is not None

    def _end_cancelled(self, run_id: str) -> None:
        """Inside a transaction: end a run that no worker holds with reason ``cancel``."""
        at = now()
        self._db.execute(
            "UPDATE runs SET status = 'cancel', attempt = attempt + 1, finished_at = ?, "
            "lease_owner = NULL, lease_until = NULL, "
            "cancel_requested_at = COALESCE(cancel_requested_at, ?) WHERE run_id = ?",
            (at, at, run_id),
        )
        self._db.execute("DELETE FROM outbox WHERE run_id = ?", (run_id,))

    def _row_lock(self, mode: Literal["UPDATE", "SHARE"]) -> str:
        """The clause that locks the rows a read inside a transaction finds until its commit,
        ``FOR UPDATE`` or ``FOR SHARE`` (on PostgreSQL; SQLite's writers queue for the whole
        file)."""
        return f" FOR {mode}" if self._db.url.dialect == "postgresql" else ""

    def renew(self, run_id: str, attempt: int, *, lease_s: float) -> bool:
        """Extend the lease of ``attempt`` by ``lease_s`` seconds from now; ``False`` when the
        attempt was superseded or the run has ended (stop working on it)."""
        return bool(
            self._db.execute(
                f"UPDATE runs SET lease_until = ? WHERE run_id = ? AND attempt = ? AND {_OPEN}",
                (now(minus_s=-lease_s), run_id, attempt),
            )
        )

    def release(self, run_id: str, attempt: int) -> bool:
        """Hand the run back unfinished (a graceful shutdown): no lease, queued again, and
        this delivery not counted against the poison limit. The attempt moves on, so that
        nothing the delivery still reports (its cancelled run) is recorded."""
        return bool(
            self._db.execute(
                "UPDATE runs SET status = 'queued', attempt = attempt + 1, lease_owner = NULL, "
                "lease_until = NULL, deliveries = deliveries - 1 "
                f"WHERE run_id = ? AND attempt = ? AND {_OPEN}",
                (run_id, attempt),
            )
        )

    def completed_steps(self, run_id: str) -> dict[str, Any]:
        """The recorded output state of each step run of ``run_id`` that completed (reason
        ``success`` or ``fail``, its output stored), by key: what a later delivery resumes
        from."""
        rows = self._db.rows(
            "SELECT t.key, s.body FROM steps t JOIN states s ON s.hash = t.output_ref "
            "WHERE t.run_id = ? AND t.reason IN ('success', 'fail')",
            (run_id,),
        )
        return {key: orjson.loads(body) for key, body in rows}

    # -- the outbox -------------------------------------------------------------------------

    def outbox_pending(
        self, *, older_than_s: float, limit: int = 100
    ) -> list[tuple[str, str, bytes]]:
        """Messages not confirmed published for ``older_than_s`` seconds whose run no worker
        has claimed yet: (run id, queue, message), oldest first."""
        rows = self._db.rows(
            "SELECT o.run_id, o.queue, o.message FROM outbox o "
            "JOIN runs r ON r.run_id = o.run_id "
            "WHERE o.created_at < ? AND r.attempt = 0 "
            "ORDER BY o.created_at LIMIT ?",
            (now(minus_s=older_than_s), limit),
        )
        return [(run_id, queue, bytes(message)) for run_id, queue, message in rows]

    def outbox_published(self, run_id: str) -> None:
        """The broker confirmed the run's message: the outbox lets go of it (it holds the
        run's input state, configuration included, which the ledger keeps no longer than
        it must)."""
        self._db.execute("DELETE FROM outbox WHERE run_id = ?", (run_id,))
