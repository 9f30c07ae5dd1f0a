"""One step's life: inputs, init, attempts, events and log lines.

The step's work (linking adaptors and loading the job, then the operations and the sealing
of the output state, in ``_operations``, then its edge conditions) runs on a step worker
(see ``_worker``) in one hand-off; the run's thread meanwhile waits with the step's
deadline and delivers events. Edge conditions are code from the plan, evaluated on the
step's output: they run within the step's time, so a condition that never ends is the
step's timeout. A run with no timeout and one branch at a time has nothing to wait for
while a step runs, so its steps run inline on the run's own thread and skip the hand-off
(about 0.1 ms a step); started with ``run``, such a run needs no event loop at all (see
``_scheduler``).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import _events as events
from ._classify import Classifier
from ._console import JobConsole
from ._context import enter_run
from ._errors import (
    SecurityError,
    StatefnError,
    StepCancelledError,
    StepTimeoutError,
)
from ._events import Event
from ._masking import Masker
from ._operations import OperationsOutcome, StepSettings, finish, run_operations
from ._plan import Step
from ._scheduler import is_cancelled
from ._state import State, assemble, copy_state, decode, encode
from .adaptor import step_console

if TYPE_CHECKING:
    from ._execute import Run
    from ._worker import StepWorker

__all__ = ["StepResult", "StepRun", "elapsed_ms", "traced_allocations"]


def elapsed_ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def _tracemalloc() -> ModuleType:
    """The tracemalloc module, imported only by runs with ``profile=True``."""
    import tracemalloc

    return tracemalloc


@contextmanager
def traced_allocations(enabled: bool) -> Iterator[None]:
    """Trace allocations while a profiled run runs (unless something traces already)."""
    started = enabled and not _tracemalloc().is_tracing()
    if started:
        _tracemalloc().start()
    try:
        yield
    finally:
        if started:
            _tracemalloc().stop()


def _resident_bytes() -> int:
    """The process's resident memory high-water mark (``getrusage``: no file is read)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@dataclass(slots=True)
class StepResult:
    """What the walk needs of a finished step."""

    state: State | None  # None: the step produced no state
    targets: list[str]
    encoded: bytes | None


class StepRun:
    """The life of one step."""

    def __init__(self, run: Run, step: Step, key: str) -> None:
        self.run = run
        self.step = step
        self.key = key
        self.label = f"{step.name} ({step.id})" if step.name else step.id
        self._announced = False
        self._ended = False

    async def execute(self, state_in: State) -> StepResult:
        run, step = self.run, self.step
        configuration, default = await run.step_inputs(step)
        state = assemble(state_in, default, configuration, run.plan.credentials, copy_state)
        masker = Masker.for_configuration(state["configuration"])
        console = JobConsole(step.id, run.options.job_logger, run.bus, masker)
        classifier = Classifier(step.id, run.is_adaptor_file, run.job_sources, run.job(step))
        settings = StepSettings(
            immutable=run.options.immutable_state,
            props_to_remove=run.options.state_props_to_remove,
            limit_bytes=run.limit_bytes,
            warn=lambda text: run.logger.warning(masker.text(text), extra={"job_id": step.id}),
            record=lambda error: masker.value(error.to_dict()),
            written=run.written_operations(step),
        )
        started = time.perf_counter()
        resident = _resident_bytes() if run.bus.listening else 0
        traced = 0
        if run.options.profile:
            traced = _tracemalloc().get_traced_memory()[0]
            _tracemalloc().reset_peak()
        run.bus.emit(Event.INIT_START, events.init_start(step.id))
        run.logger.info("Starting step %s", self.label, extra={"job_id": step.id})
        pool = run.pool
        worker = pool.acquire() if pool is not None else None
        work = self._routed(self._work(worker, state, console, classifier, settings, started))
        try:
            if worker is None:
                outcome = await _within(run, self.key, console, work)
            else:
                outcome = await self._on_worker(worker, work, console, started)
        except StepTimeoutError as timeout:
            outcome = OperationsOutcome(state, None, timeout)
        except BaseException as error:
            # Cancelled (the run ended) or, inline, interrupted (Ctrl-C) while it waited.
            if is_cancelled(error) or isinstance(error, KeyboardInterrupt):
                self._cancelled(started)
            raise
        finally:
            self._ended = True
            console.close()
            if pool is not None and worker is not None:
                pool.release(worker)
        if outcome.interrupted:
            self._cancelled(started)
            raise KeyboardInterrupt
        self._announce(elapsed_ms(started))
        return self._report(outcome, masker, started, _Memory(resident, traced))

    async def _on_worker(
        self, worker: StepWorker, work: Any, console: JobConsole, started: float
    ) -> OperationsOutcome:
        """Hand the step's work to its worker and wait for it, within the step's timeout."""
        import asyncio  # a run with workers runs on an event loop

        run = self.run
        future = asyncio.wrap_future(worker.submit(_within(run, self.key, console, work)))
        try:
            outcome: OperationsOutcome = await asyncio.wait_for(future, run.timeout_s)
            return outcome
        except TimeoutError:
            worker.abandon()
            raise StepTimeoutError(
                f"Job took longer than {run.timeout_ms:g}ms to complete", step_id=self.step.id
            ) from None
        except asyncio.CancelledError:
            worker.abandon()
            raise

    def _cancelled(self, started: float) -> None:
        """The run ended while this step ran: its job-start still gets its job-error."""
        self._announce(elapsed_ms(started))
        error = StepCancelledError(
            "Step cancelled: the run ended (its end step finished, or it was interrupted) "
            "while this step was running",
            step_id=self.step.id,
        )
        payload = events.job_error(self.step.id, elapsed_ms(started), error.to_dict(), None, [])
        self.run.bus.emit(Event.JOB_ERROR, payload)
        self.run.logger.warning("Step %s cancelled", self.label, extra={"job_id": self.step.id})

    def _announce(self, init_ms: float, *, from_worker: bool = False) -> None:
        """Send init-complete and job-start, once (on the run's thread). An announcement
        posted by the worker is dropped if the step ended before it arrived."""
        if self._announced or (from_worker and self._ended):
            return
        self._announced = True
        self.run.bus.emit(Event.INIT_COMPLETE, events.init_complete(self.step.id, init_ms))
        self.run.bus.emit(Event.JOB_START, events.job_start(self.step.id))

    async def _routed(self, work: Any) -> OperationsOutcome:
        """``work``'s outcome with the targets of the edges it follows; a condition that
        raises is the step's error."""
        outcome: OperationsOutcome = await work
        error = outcome.error
        if not outcome.interrupted and (error is None or error.severity == "fail"):
            try:
                state = {} if outcome.state is None else outcome.state
                outcome.targets = self.run.route(self.step, state)
            except StatefnError as edge_error:
                outcome.error = edge_error
        return outcome

    async def _work(
        self,
        worker: StepWorker | None,
        state: State,
        console: JobConsole,
        classifier: Classifier,
        settings: StepSettings,
        started: float,
    ) -> OperationsOutcome:
        """On the worker (or inline): load the job, run the attempts, seal the output."""
        run, step = self.run, self.step
        violations: list[SecurityError] = []
        try:
            operations = (
                step.expression
                if isinstance(step.expression, list)
                else run.load_operations(step, console, violations)
            )
        except KeyboardInterrupt:
            return OperationsOutcome(state, None, None, interrupted=True)
        except BaseException as error:  # top-level job code: classified like operations
            return finish(state, classifier.classify(error), settings, classifier)
        if run.bus.listening and worker is None:
            # Inline, operations hold the loop: deliver what is queued before they start.
            self._announce(elapsed_ms(started))
            await run.bus.drain()
        elif run.bus.listening:
            init_ms = elapsed_ms(started)
            run.scheduler.call_soon_threadsafe(lambda: self._announce(init_ms, from_worker=True))
        attempts = step.retry.attempts if step.retry else 1
        pristine = encode(state) if attempts > 1 else None
        for attempt in range(1, attempts + 1):
            attempt_state = state if pristine is None or attempt == 1 else decode(pristine)
            outcome = await run_operations(
                operations,
                attempt_state,
                settings,
                classifier,
                lambda: _abandoned(worker),
                run.scheduler.foreign,
            )
            if violations:
                # Job code caught the sandbox's error; the step is killed all the same.
                return OperationsOutcome(outcome.state, None, classifier.classify(violations[0]))
            failure = outcome.error
            if failure is None or failure.severity != "fail" or attempt == attempts:
                return outcome
            assert step.retry is not None
            delay = step.retry.backoff_ms * step.retry.factor ** (attempt - 1)
            message = settings.record(failure)["message"]
            self._warn(
                f"Attempt {attempt} of {attempts} failed ({message}); retrying in {delay:g}ms"
            )
            await run.scheduler.sleep(delay / 1000)
        raise AssertionError("unreachable: the last attempt returns")

    def _warn(self, message: str) -> None:
        """A runtime warning about this step, from the worker: logger and ``log`` event."""
        run, step = self.run, self.step
        run.logger.warning(message, extra={"job_id": step.id})
        run.bus.emit_threadsafe(Event.LOG, events.log(step.id, "warn", message))

    def _report(
        self, outcome: OperationsOutcome, masker: Masker, started: float, memory: _Memory
    ) -> StepResult:
        """Evaluate the edges, send job-complete or job-error, log; raise crash and kill."""
        run, step = self.run, self.step
        error, targets = outcome.error, outcome.targets
        if outcome.state is None and targets:
            run.logger.warning(
                "Step %s did not return a state object: its next steps start from {}",
                self.label,
                extra={"job_id": step.id},
            )
        duration = elapsed_ms(started)
        state_copy = run.state_for_event(outcome.state, outcome.encoded)
        if error is None:
            mem = memory.measure(run.options.profile) if run.bus.listening else {}
            run.bus.emit(
                Event.JOB_COMPLETE, events.job_complete(step.id, duration, state_copy, targets, mem)
            )
            run.logger.info(
                "Completed step %s in %sms", self.label, duration, extra={"job_id": step.id}
            )
            return StepResult(outcome.state, targets, outcome.encoded)
        error.message = masker.text(error.message)
        record = masker.value(error.to_dict())
        run.bus.emit(
            Event.JOB_ERROR, events.job_error(step.id, duration, record, state_copy, targets)
        )
        run.logger.error(
            "Step %s failed%s: %s: %s%s",
            self.label,
            f" at line {error.pos['line']}" if error.pos else "",
            error.name,
            error.message,
            _source_excerpt(error.pos),
            extra={"job_id": step.id},
        )
        if error.__cause__ is not None:
            run.logger.debug(
                "Traceback of step %s",
                self.label,
                exc_info=error.__cause__,
                extra={"job_id": step.id},
            )
        if error.severity != "fail":
            raise error
        return StepResult(outcome.state, targets, outcome.encoded)


def _source_excerpt(pos: dict[str, Any] | None) -> str:
    """The job source line of an error with a caret under its column, for log lines."""
    if not pos or not pos.get("src"):
        return ""
    source = str(pos["src"])
    indent = len(source) - len(source.lstrip())
    column = max(int(pos.get("column") or 1), indent + 1)
    return f"\n    {source.strip()}\n    {' ' * (column - 1 - indent)}^"


@dataclass(slots=True)
class _Memory:
    """Memory figures at the start of a step, for the ``mem`` of job-complete."""

    resident: int
    traced: int

    def measure(self, profile: bool) -> dict[str, int]:
        """``job``: what the step allocated (resident growth; traced when profiling, with
        ``peak``); ``system``: the process's resident memory, its high-water mark."""
        now = _resident_bytes()
        if not profile:
            return {"job": max(now - self.resident, 0), "system": now}
        current, peak = _tracemalloc().get_traced_memory()
        return {
            "job": max(current - self.traced, 0),
            "system": now,
            "peak": max(peak - self.traced, 0),
        }


def _abandoned(worker: StepWorker | None) -> bool:
    return worker is not None and worker.abandoned


async def _within(run: Run, key: str, console: JobConsole, work: Any) -> Any:
    """Run ``work`` with the run and the step's console visible to adaptor code, and a
    decimal context of its own: what job code does to ``decimal.getcontext()`` stays in
    the step, whichever thread (the host's own, inline) it runs on.

    Before anything has imported ``decimal`` no decimal context exists: one that job code
    makes is made in the step's own copy of the context variables (each step runs in one,
    as a task does) and ends with it. Decimal is then left unimported (~2 ms of a run)."""
    enter_run(run.context, key)
    step_console.set(console)
    decimal = sys.modules.get("decimal") or sys.modules.get("_decimal")
    if decimal is None:
        return await work
    with decimal.localcontext(decimal.Context()):
        return await work
