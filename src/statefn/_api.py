"""The public entry points: ``run``, ``run_async`` and ``validate_plan``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from typing import Any

from ._errors import InputError
from ._execute import Run, uses_workers
from ._options import RunOptions, parse_options
from ._plan import Plan, normalise
from ._scheduler import InlineScheduler, LoopScheduler, complete, end_tasks, running_loop

__all__ = ["run", "run_async", "run_here", "validate_plan"]


def validate_plan(plan: Any, *, default_step_id: str = "job-1") -> dict[str, Any]:
    """Check a plan; return its normal form or raise ``ValidationError``.

    ``plan`` takes the forms ``run`` takes (a plan dict, job source or a list of
    operations). The normal form has every step's id, ``next`` as an object of edges and
    the start step. Job source is not compiled here; ``compile_job`` does that.
    """
    return _as_plan(plan, default_step_id).to_dict()


def _as_plan(plan: Any, default_step_id: str) -> Plan:
    if isinstance(plan, str | list):
        plan = {"workflow": {"steps": [{"id": default_step_id, "expression": plan}]}}
    elif not isinstance(plan, dict):
        raise InputError(
            f"plan must be a plan dict, job source or a list of operations, got "
            f"{type(plan).__name__}"
        )
    return normalise(plan)


async def run_async(plan: Any, state: Any = None, **options: Any) -> Any:
    """Run a workflow and return its result (see ``run``)."""
    settings = parse_options(options)
    _, result = await _on_loop(_as_plan(plan, settings.default_step_id), settings, state)
    return result


def run_here(
    plan: Plan,
    settings: RunOptions,
    state: Any,
    run_id: str | None = None,
    set_up: Callable[[Run], None] | None = None,
) -> tuple[Run, Any]:
    """Run ``plan`` on this thread (no event loop may run on it): inline when it needs no
    step workers, else on an event loop of its own (see ``_scheduler``). ``set_up`` is
    given the ``Run`` before it is prepared. The run and its result."""
    if uses_workers(plan, settings):
        ran: tuple[Run, Any] = _run_loop(_on_loop(plan, settings, state, run_id, set_up))
        return ran
    workflow = _prepared(Run(plan, settings, InlineScheduler(), run_id), set_up)
    return workflow, complete(workflow.execute(state))


async def _on_loop(
    plan: Plan,
    settings: RunOptions,
    state: Any,
    run_id: str | None = None,
    set_up: Callable[[Run], None] | None = None,
) -> tuple[Run, Any]:
    import asyncio

    scheduler = LoopScheduler(asyncio.get_running_loop())
    workflow = _prepared(Run(plan, settings, scheduler, run_id), set_up)
    return workflow, await workflow.execute(state)


def _prepared(workflow: Run, set_up: Callable[[Run], None] | None) -> Run:
    if set_up is not None:
        set_up(workflow)
    workflow.prepare()
    return workflow


def run(plan: Any, state: Any = None, **options: Any) -> Any:
    """Run a workflow and return its result.

    ``plan`` is a plan dict, Python job source (one step) or a list of operations (one
    step); ``state`` the input state dict or an id for ``resolve_state``. The result is the
    output state of the single leaf step, a dict ``{leaf_key: state}`` when there are
    several, or ``None``. ``fail`` errors are recorded in ``state["errors"]``; ``crash``
    and ``kill`` errors are raised. The options are described in the contract, section 2.

    Called from a thread that already runs an event loop, the workflow runs on a thread of
    its own; ``run_async`` is the better choice there.
    """
    if running_loop() is not None:
        return _run_on_thread(lambda: run(plan, state, **options))
    settings = parse_options(options)
    _, result = run_here(_as_plan(plan, settings.default_step_id), settings, state)
    return result


def _run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run`` without its Ctrl-C handler.

    asyncio.run answers the first Ctrl-C by cancelling its task, which waits for the loop;
    a step running inline (see ``_step``) holds the loop, so Ctrl-C must raise
    ``KeyboardInterrupt`` where the main thread is, as Python does by default. Whatever
    ends the run, its remaining tasks are cancelled and awaited, so workers and events are
    closed.
    """
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            end_tasks(loop)
        finally:
            loop.close()


def _run_on_thread(work: Callable[[], Any]) -> Any:
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # handed back to the caller's thread as it is
            outcome["error"] = error

    thread = threading.Thread(target=target, name="statefn-run")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")
