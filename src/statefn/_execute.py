"""Executing a plan: the graph walk, step by step.

Ready steps wait in a first-in first-out queue; up to ``concurrency`` of them run at once
(with 1, the walk is breadth-first and deterministic). When a step ends, its edges are
evaluated on its output state and each followed edge queues the target with its own state:
the last target takes the output itself, the others a copy. A step that follows no edge,
or the ``end`` step, is a leaf, and the leaves make the result.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import _events as events
from ._compile import (
    CompiledJob,
    JobEnvironment,
    OperationInfo,
    compile_globals,
    compile_job,
    load_globals,
    load_job,
)
from ._console import JobConsole
from ._context import RunContext
from ._errors import EdgeConditionError, InputError, SecurityError, StatefnError, step_context
from ._events import Event, EventBus
from ._jobscope import ModuleView
from ._linker import Linker
from ._options import RunOptions
from ._plan import SPECIAL_CONDITIONS, Edge, Plan, Step
from ._scheduler import Scheduler
from ._state import State, copy_state, decode
from ._step import StepResult, StepRun, elapsed_ms, traced_allocations

if TYPE_CHECKING:
    from ._worker import WorkerPool

__all__ = ["Run", "uses_workers"]


def _limits(plan: Plan, options: RunOptions) -> tuple[float | None, int]:
    """A run's step timeout in ms (the plan's, else the options') and how many of its steps
    may run at once (the options', else the plan's, else one)."""
    return plan.timeout_ms or options.timeout_ms, options.concurrency or plan.concurrency or 1


def uses_workers(plan: Plan, options: RunOptions) -> bool:
    """Whether a run of ``plan`` puts its steps on worker threads: to end a step on time (a
    timeout), or to run several at once. Without, steps run inline on the run's thread."""
    timeout, concurrency = _limits(plan, options)
    return timeout is not None or concurrency > 1


class Run:
    """One execution of a plan: its id, options, events, workers and linked adaptors."""

    def __init__(
        self,
        plan: Plan,
        options: RunOptions,
        scheduler: Scheduler,
        run_id: str | None = None,
    ) -> None:
        self.id = run_id or os.urandom(16).hex()
        self.scheduler = scheduler
        self.plan = plan
        self.options = options
        self.logger = options.logger
        self.context = RunContext(self.id)
        self.bus = EventBus(options.on_event, scheduler, options.logger)
        timeout, self.concurrency = _limits(plan, options)
        self.timeout_s = timeout / 1000 if timeout else None
        self.timeout_ms = timeout
        # Workers let the run's thread end a step on time and run branches side by side;
        # without a timeout and with one branch at a time, steps run inline (see _step).
        self.pool: WorkerPool | None = None
        if uses_workers(plan, options):
            from ._worker import WorkerPool

            self.pool = WorkerPool(self.context)
        limit_mb = options.state_limit_mb
        self.limit_bytes = int(limit_mb * 1024 * 1024) if limit_mb else sys.maxsize
        self.job_sources: dict[str, list[str]] = {}
        self._compiled: dict[str, CompiledJob] = {}
        self._linker: Linker | None = None
        self._globals_job: CompiledJob | None = None
        self._globals: dict[str, Any] | None = None
        self._globals_lock = threading.Lock()
        self._runs_of: dict[str, int] = {}
        # Seams for the engine: told of each step run as it is queued (its key, such as
        # ``z-1``, and its input state), left holding the keys of the leaves, and (below)
        # told when the input state is its own.
        self.step_observer: Callable[[str, str, State], None] | None = None
        self.leaf_keys: list[str] = []
        # Step runs that completed in an earlier delivery of this run, by key, with their
        # recorded output states: the walk takes those outputs instead of running the steps
        # again (their edges are evaluated as usual). A distributed worker's resume.
        self.completed: dict[str, State] = {}
        # True when the input state was just decoded from JSON for this run alone (in an
        # engine worker): nothing else holds it and it is plain JSON, so it is not copied.
        self.owns_input = False

    # -- before the first step ------------------------------------------------------------

    def prepare(self) -> None:
        """Compile every job and check the options that need the plan; nothing runs yet."""
        for step in self.plan.steps.values():
            if isinstance(step.expression, str):
                with step_context(step.id):
                    self._compiled[step.id] = compile_job(step.expression, step.adaptors)
            resolvers = (
                (
                    "configuration",
                    step.configuration,
                    "resolve_credential",
                    self.options.resolve_credential,
                ),
                ("state", step.state, "resolve_state", self.options.resolve_state),
            )
            for field, value, option, resolver in resolvers:
                if isinstance(value, str) and resolver is None:
                    raise InputError(
                        f"step {step.id} has the id {value!r} as its {field}, but no "
                        f"{option} was given",
                        step_id=step.id,
                        fix=f"Pass {option}=... to run, or write the {field} in the plan.",
                    )
        if self.plan.globals:
            self._globals_job = compile_globals(self.plan.globals)
        if self._compiled:
            self._linker = Linker.from_option(self.options.linker)

    async def input_state(self, state: Any) -> State:
        """The run's input: a copy of the given state, or the state its id resolves to."""
        if state is None:
            return {"data": {}, "configuration": {}}
        if isinstance(state, str):
            if self.options.resolve_state is None:
                raise InputError(
                    f"the input state is the id {state!r}, but no resolve_state was given",
                    fix="Pass resolve_state=... to run.",
                )
            started = time.perf_counter()
            resolved = await self._resolve(self.options.resolve_state, state, "state")
            self.bus.emit(Event.LOAD_STATE, events.load_state(state, elapsed_ms(started)))
            state = resolved
        if not isinstance(state, dict):
            raise InputError(f"the input state must be a dict, got {type(state).__name__}")
        if self.owns_input:
            return state
        copied: State = copy_state(state, "state")
        return copied

    async def _resolve(self, resolver: Callable[[str], Any], key: str, what: str) -> Any:
        try:
            value = resolver(key)
            if inspect.isawaitable(value):
                value = await self.scheduler.foreign(value)
        except StatefnError:
            raise
        except Exception as error:
            raise InputError(f"could not resolve {what} {key!r}: {error}") from None
        if value is None:
            raise InputError(
                f"unknown {what} {key!r}: the resolver returned nothing",
                fix=f"Check the {what} id.",
            )
        return value

    # -- the walk -------------------------------------------------------------------------

    async def execute(self, state: Any) -> Any:
        started = time.perf_counter()
        self.bus.emit(Event.WORKFLOW_START, events.workflow_start(self.plan.id))
        try:
            with traced_allocations(self.options.profile):
                first = await self.input_state(state)
                leaves = await self._walk(first)
            self.leaf_keys = list(leaves)
            result: Any = None
            if len(leaves) == 1:
                result = next(iter(leaves.values()))
            elif leaves:
                result = leaves
            duration = elapsed_ms(started)
            self.logger.info("Workflow completed in %sms", duration)
            self.bus.emit(Event.WORKFLOW_COMPLETE, events.workflow_complete(result, duration))
            return result
        finally:
            try:
                if self.pool is not None:
                    await self.pool.close()
                await self.bus.close()
            finally:
                self.scheduler.close(self.context)

    def _key(self, step_id: str) -> str:
        count = self._runs_of.get(step_id, 0)
        self._runs_of[step_id] = count + 1
        return step_id if count == 0 else f"{step_id}-{count}"

    async def _walk(self, first: State) -> dict[str, State]:
        queue: deque[tuple[str, State]] = deque([(self.plan.start, first)])
        running: dict[Any, tuple[str, str, int]] = {}  # the scheduler's handles of steps
        leaves: list[tuple[int, str, State]] = []
        started = 0
        try:
            while queue or running:
                while queue and len(running) < self.concurrency:
                    step_id, state = queue.popleft()
                    key = self._key(step_id)
                    step = self.plan.steps[step_id]
                    if key in self.completed:
                        work = self._recorded(step, key, self.completed.pop(key))
                    else:
                        if self.step_observer is not None:
                            self.step_observer(step_id, key, state)
                        work = self._step(step, state, key)
                    running[self.scheduler.spawn(work)] = (step_id, key, started)
                    started += 1
                done = await self.scheduler.first_done(running)
                for task in sorted(done, key=lambda t: running[t][2]):
                    step_id, key, order = running.pop(task)
                    result = task.result()
                    output, targets, encoded = result.state, result.targets, result.encoded
                    if output is not None and (step_id == self.plan.end or not targets):
                        leaves.append((order, key, output))
                    if step_id == self.plan.end:
                        self.logger.info("Reached the end step %s", step_id)
                        return {key: state for _, key, state in sorted(leaves)}
                    for index, target in enumerate(targets):
                        last = index == len(targets) - 1
                        if output is None:  # the step produced no state
                            queue.append((target, {}))
                        else:
                            queue.append((target, output if last else self._copy(output, encoded)))
        finally:
            for task in running:
                task.cancel()
            await self.scheduler.settle(running)
        return {key: state for _, key, state in sorted(leaves)}

    @staticmethod
    def _copy(state: State, encoded: bytes | None) -> State:
        copied: State = decode(encoded) if encoded is not None else copy_state(state)
        return copied

    # -- one step -------------------------------------------------------------------------

    def route(self, step: Step, state: State) -> list[str]:
        """The targets of the edges of ``step`` that ``state`` follows."""
        return [
            edge.target for edge in step.next if edge.followable and self._holds(step, edge, state)
        ]

    def _holds(self, step: Step, edge: Edge, state: State) -> bool:
        condition = edge.condition
        if condition is True:
            return True
        special = SPECIAL_CONDITIONS.get(condition) if isinstance(condition, str) else None
        if special is not None:
            errors = state.get("errors") if isinstance(state, dict) else None
            record = errors.get(step.id) if isinstance(errors, dict) else None
            # As in OpenFn (JavaScript truthiness), a record present but empty is a failure.
            failed = isinstance(record, dict | list) or bool(record)
            return {"always": True, "on_job_success": not failed, "on_job_failure": failed}[special]
        try:
            if callable(condition):
                return bool(condition(state))
            assert edge.compiled is not None
            return bool(edge.compiled.evaluate({"state": state, "upstream_step_id": step.id}))
        except StatefnError as error:
            if error.severity == "fail":
                raise self._edge_error(step, edge, state, error.message) from None
            raise
        except Exception as error:
            message = f"{type(error).__name__}: {error}"
            raise self._edge_error(step, edge, state, message) from None

    @staticmethod
    def _edge_error(step: Step, edge: Edge, state: State, message: str) -> EdgeConditionError:
        raised = f"{step.id}->{edge.target} raised {message}"
        # A condition usually breaks on the state of a step that failed: its error comes first.
        errors = state.get("errors") if isinstance(state, dict) else None
        failure = errors.get(step.id) if isinstance(errors, dict) else None
        if isinstance(failure, dict):
            cause = f"{failure.get('name', 'Error')}: {failure.get('message', '')}"
            text = f"Step {step.id} failed with {cause}; then its edge condition {raised}"
        else:
            text = f"Edge condition {raised}"
        return EdgeConditionError(
            text, step_id=step.id, details={"condition": edge.condition, "target": edge.target}
        )

    async def _recorded(self, step: Step, key: str, output: State) -> StepResult:
        """A step run that completed before: its recorded output, routed as usual."""
        self.logger.info("Step %s completed in an earlier delivery: resuming after it", key)
        with step_context(step.id):
            return StepResult(output, self.route(step, output), None)

    async def _step(self, step: Step, state: State, key: str) -> StepResult:
        with step_context(step.id):
            if step.is_trigger:
                return StepResult(state, self.route(step, state), None)
            return await StepRun(self, step, key).execute(state)

    # -- what a step needs from the run ---------------------------------------------------

    async def step_inputs(self, step: Step) -> tuple[Any, Any]:
        configuration = step.configuration
        if isinstance(configuration, str):
            assert self.options.resolve_credential is not None
            configuration = await self._resolve(
                self.options.resolve_credential, configuration, "credential"
            )
        default = step.state
        if isinstance(default, str):
            assert self.options.resolve_state is not None
            default = await self._resolve(self.options.resolve_state, default, "state")
        for value, what in ((configuration, "configuration"), (default, "state")):
            if value is not None and not isinstance(value, dict):
                raise InputError(
                    f"step {step.id}: its {what} must be an object, got {type(value).__name__}"
                )
        return configuration, default

    def load_operations(
        self, step: Step, console: JobConsole, violations: list[SecurityError]
    ) -> list[Callable[..., Any]]:
        """Link the step's adaptors and load its job (on the step's worker). The sandbox
        appends to ``violations`` each forbidden act it stopped, even if job code caught
        the error."""
        assert isinstance(step.expression, str) and self._linker is not None
        compiled = self._compiled[step.id]
        linker = (
            self._linker.with_overrides(step.linker, field=f"step {step.id}: linker")
            if step.linker
            else self._linker
        )
        names: dict[str, Any] = {}
        specs = (
            step.adaptors
            if any(_name(s) == "common" for s in step.adaptors)
            else ["common", *step.adaptors]
        )
        for spec in specs:
            names.update(linker.load(spec).exports)
        names.update(self._workflow_globals(console, violations))
        names.update(self.options.globals)
        declared = {_name(spec): spec for spec in specs}
        env = self._environment(linker, names, console, step.id, violations, declared)
        return load_job(self._remember(compiled), env)

    def _workflow_globals(
        self, console: JobConsole, violations: list[SecurityError]
    ) -> dict[str, Any]:
        """The names ``workflow.globals`` defines, loaded once per run by the first job."""
        if self._globals_job is None:
            return {}
        with self._globals_lock:
            if self._globals is None:
                assert self._linker is not None
                names = dict(self._linker.load("common").exports)
                env = self._environment(self._linker, names, console, "globals", violations)
                self._globals = load_globals(self._remember(self._globals_job), env)
            return self._globals

    @staticmethod
    def _environment(
        linker: Linker,
        names: dict[str, Any],
        console: JobConsole,
        step_id: str,
        violations: list[SecurityError],
        declared: dict[str, str] | None = None,
    ) -> JobEnvironment:
        """What job code sees; ``import name`` loads the spec the step declared for
        ``name`` (``name@1.0.0``), else the name alone."""
        specs = declared or {}
        return JobEnvironment(
            names=names,
            console=console,
            step_id=step_id,
            import_adaptor=lambda name: ModuleView(
                name, linker.load(specs.get(name, name)).exports
            ),
            violations=violations,
        )

    def _remember(self, compiled: CompiledJob) -> CompiledJob:
        """Keep the job's source lines, for error positions."""
        self.job_sources[compiled.filename] = compiled.source_lines
        return compiled

    def job(self, step: Step) -> CompiledJob | None:
        """The compiled job of ``step`` (None for a list of operations or a trigger)."""
        return self._compiled.get(step.id)

    def written_operations(self, step: Step) -> Sequence[OperationInfo]:
        """The operations of the step's job as its source writes them (none for callables)."""
        compiled = self._compiled.get(step.id)
        return compiled.operations if compiled is not None else ()

    def is_adaptor_file(self, filename: str) -> bool:
        return self._linker is not None and self._linker.is_adaptor_file(filename)

    def state_for_event(self, state: State | None, encoded: bytes | None) -> State | bytes | None:
        """A copy of ``state`` for an event payload, made only when someone listens; its
        JSON as it is with the ``event_states="json"`` option."""
        if not self.bus.listening or state is None or encoded is None:
            return None
        if self.options.event_states == "json":
            return encoded
        return self._copy(state, encoded)


def _name(spec: str) -> str:
    return spec.rsplit("@", 1)[0] if "@" in spec[1:] else spec
