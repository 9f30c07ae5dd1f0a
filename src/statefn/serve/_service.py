"""The service behind ``statefn serve``: the project's workflows, the ledger, and runs.

Both faces of the server, the JSON API and the web UI, go through one ``Service``:

    service.workflows()                      # every workflow file, valid or with its errors
    service.ledger.runs(limit=50)            # the read API of statefn.ledger
    run_id = await service.start_run("quickstart", {"data": {}})
    run_id = await service.retry(run_id, "clean")   # from a step, with its recorded input
    await service.cancel(run_id)
    async for kind, payload in service.follow(run_id): ...   # "log", "step", then "end"

Errors a client can fix are ``ServiceError``s carrying an HTTP status (404 unknown workflow or
run, 409 a request that conflicts with the run's state, 422 a workflow with errors).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Mapping
from typing import Any

from statefn._errors import StatefnError
from statefn.ledger import Ledger, RunLookupError, RunRecord, StateWithheldError, StepRecord

from ._project import Project, Workflow
from ._runners import Runner

__all__ = ["Conflict", "Invalid", "NotFound", "Service", "ServiceError", "Unavailable", "signature"]

# How often ``follow`` looks at the ledger for a run's new log lines and steps.
FOLLOW_POLL_S = 0.2


class ServiceError(Exception):
    """A request the service refuses; ``status`` is its HTTP status."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if status is not None:
            self.status = status


class NotFound(ServiceError):
    """No such workflow, run, step or trigger."""

    status = 404


class Conflict(ServiceError):
    """The request does not fit the state of the run or workflow (cancel a finished run)."""

    status = 409


class Invalid(ServiceError):
    """The workflow or the input does not validate; ``details["errors"]`` lists why."""

    status = 422


class Unavailable(ServiceError):
    """The ledger (or the broker) did not take the run: nothing was started."""

    status = 503


class Service:
    """The workflows of a ``Project``, a ``Ledger`` to read, and a ``Runner`` to run on.

    ``credentials`` maps credential ids to configurations: the runner's steps get theirs
    from the engine; the service reads the secrets of signed webhooks from it.
    """

    def __init__(
        self,
        project: Project,
        ledger: Ledger,
        runner: Runner,
        *,
        credentials: Mapping[str, Any] | None = None,
    ) -> None:
        self.project = project
        self.ledger = ledger
        self.runner = runner
        self.credentials = dict(credentials or {})

    # -- workflows -------------------------------------------------------------------------

    def workflows(self) -> list[Workflow]:
        """Every workflow of the project, by name, valid or with its errors."""
        return self.project.workflows

    def workflow(self, name: str) -> Workflow:
        workflow = self.project.get(name)
        if workflow is None:
            known = ", ".join(w.name for w in self.project.workflows) or "none"
            raise NotFound(f"No workflow named {name!r}; the workflows served are: {known}")
        return workflow

    def last_run(self, name: str) -> RunRecord | None:
        """The newest run of workflow ``name``, or ``None``."""
        runs = self.ledger.runs(workflow=name, limit=1)
        return runs[0] if runs else None

    async def refresh(self) -> bool:
        """Reload the project if a file changed (reads the disk off the event loop)."""
        return await asyncio.to_thread(self.project.refresh)

    def webhook_secret(self, workflow: Workflow, step_id: str) -> bytes | None:
        """The key that signs requests to trigger ``step_id``; ``None`` for an unsigned one.

        Raises ``NotFound`` when the step is not a webhook trigger, ``Invalid`` when it is
        one of a workflow that does not validate (with the workflow's errors: its triggers
        are paused) or when its secret's credential is missing."""
        written = workflow.written_webhooks
        if not workflow.valid and (written is None or step_id in written):
            raise Invalid(
                f"Workflow {workflow.name!r} ({workflow.file.as_posix()}) does not validate, "
                f"so its webhook trigger {step_id!r} is paused until it does",
                errors=workflow.errors,
            )
        trigger = next((t for t in workflow.triggers if t.step_id == step_id), None)
        if trigger is None or not trigger.webhook:
            paused = " (its triggers are paused until it validates)" if workflow.errors else ""
            hooks = ", ".join(t.step_id for t in workflow.triggers if t.webhook) or "none"
            raise NotFound(
                f"Workflow {workflow.name!r} has no webhook trigger {step_id!r}{paused}; "
                f"its webhook triggers are: {hooks}"
            )
        if trigger.secret is None:
            return None
        value = self.credentials.get(trigger.secret)
        if isinstance(value, Mapping):
            value = value.get("secret")
        if not isinstance(value, str) or not value:
            raise Invalid(
                f"The webhook secret {trigger.secret!r} of {workflow.name}.{step_id} is not in "
                "the credentials: give statefn serve --credentials FILE with "
                f'{{"{trigger.secret}": {{"secret": "..."}}}}'
            )
        return value.encode()

    # -- runs ------------------------------------------------------------------------------

    async def start_run(
        self, name: str, state: dict[str, Any] | None = None, *, start: str | None = None
    ) -> str:
        """Start a run of workflow ``name`` (from step ``start``) with input ``state``
        (default ``{"data": {}}``); its id, once the ledger has recorded it."""
        workflow = self.workflow(name)
        if not workflow.valid:
            raise Invalid(
                f"Workflow {name!r} ({workflow.file.as_posix()}) does not validate",
                errors=workflow.errors,
            )
        if start is not None and workflow.step(start) is None:
            steps = ", ".join(step["id"] for step in workflow.steps)
            raise Invalid(
                f"Workflow {name!r} has no step {start!r} (as it is on disk now); its steps "
                f"are: {steps}",
                errors=[f"unknown step {start!r}"],
            )
        plan = workflow.run_plan(start)
        try:
            return await self.runner.submit(plan, {"data": {}} if state is None else state)
        except StatefnError as error:
            # The plan validated when it was loaded: what fails here is the ledger or broker.
            raise Unavailable(f"The run could not be recorded: {error.message}") from error

    def run(self, run_id: str) -> RunRecord:
        """The run ``run_id`` with its steps (``NotFound`` if the ledger has none)."""
        try:
            return self.ledger.run(run_id)
        except RunLookupError as error:
            raise NotFound(f"No run {run_id!r} in the ledger") from error

    def step(self, run_id: str, key: str) -> StepRecord:
        """Step run ``key`` of run ``run_id`` (``NotFound`` for either)."""
        return self._step_of(self.run(run_id), key)

    @staticmethod
    def _step_of(record: RunRecord, key: str) -> StepRecord:
        found = next((step for step in record.steps if step.key == key), None)
        if found is None:
            keys = ", ".join(step.key for step in record.steps) or "none yet"
            raise NotFound(
                f"Run {record.run_id} has no step run {key!r}; its step runs are: {keys}"
            )
        return found

    async def retry(self, run_id: str, from_step: str | None = None) -> str:
        """A new run of the run's workflow as it is on disk now: from step run ``from_step``
        (a key such as ``clean`` or ``z-1``) with that step's recorded input state, or from
        the start with the run's recorded input."""
        record = await asyncio.to_thread(self.run, run_id)
        if record.workflow is None or self.project.get(record.workflow) is None:
            raise Conflict(
                f"Run {run_id} is of workflow {record.workflow!r}, which is not served here"
            )
        start = None
        try:
            if from_step is None:
                state = await asyncio.to_thread(self.ledger.state, run_id, which="input")
            else:
                step = self._step_of(record, from_step)
                start = step.step_id
                state = await asyncio.to_thread(self.ledger.state, run_id, step.key, which="input")
        except StateWithheldError as error:
            raise Conflict(f"{error.message}: it cannot be retried with that input") from error
        if state is None:
            raise Conflict(f"Run {run_id} has no recorded input state for {from_step or 'start'}")
        return await self.start_run(record.workflow, state, start=start)

    async def cancel(self, run_id: str) -> None:
        """Cancel a queued or started run that this server's runner can reach: one its
        engine holds, or with ``--broker`` any distributed run."""
        record = await asyncio.to_thread(self.run, run_id)
        if record.reason is not None:
            raise Conflict(f"Run {run_id} has already ended ({record.reason})")
        if not await self.runner.cancel(run_id):
            raise Conflict(
                f"Run {run_id} is not held by this server (it runs elsewhere): cancel it "
                "where it runs"
            )

    async def follow(
        self, run_id: str, *, after: int = 0
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """A run as it goes: ``("log", line)`` for each log line after seq ``after``,
        ``("step", step)`` when a step run starts or finishes, and ``("end", run)`` once
        with the final record. Reads the ledger, so it follows runs from anywhere."""
        seen: dict[str, str | None] = {}
        while True:
            record = await asyncio.to_thread(self.run, run_id)
            # Read after the run: a run's lines are written before its end, so once the run
            # has ended this read holds the last of them.
            logs = await asyncio.to_thread(self.ledger.logs, run_id, after=after)
            for line in logs:
                after = line.seq
                yield "log", line.to_dict()
            for step in record.steps:
                if seen.get(step.key, "") != step.reason:
                    seen[step.key] = step.reason
                    yield "step", step.to_dict()
            if record.reason is not None:
                yield "end", record.to_dict()
                return
            await asyncio.sleep(FOLLOW_POLL_S)

    # -- health and life -------------------------------------------------------------------

    def problem(self) -> str | None:
        """What stops the service from working now, or ``None``."""
        try:
            self.ledger.runs(limit=1)
        except Exception as error:
            return f"The ledger does not answer: {error}"
        return self.runner.problem()

    def close(self) -> None:
        self.runner.close()
        self.ledger.close()


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-Statefn-Signature`` value of ``body``: ``sha256=`` and its HMAC in hex."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
