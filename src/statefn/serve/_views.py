"""What the UI's pages show, built from the service's records: a workflow (its graph and
triggers), the chosen step run of a run (its states as trees and the diff between them),
and the template environment with its filters.

Templates are autoescaped Jinja; the trees and graphs come from ``_tree`` and ``_graph``,
which escape as they build, so they go into pages as ``Markup``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from statefn._errors import StatefnError
from statefn._plan import Plan, Step, normalise
from statefn.ledger import RunRecord, StateWithheldError, StepRecord

from ._graph import draw, edge_text
from ._project import Trigger, Workflow
from ._service import Service
from ._tree import Diff, diff, short_json, tree

__all__ = [
    "StepView",
    "WorkflowView",
    "duration",
    "environment",
    "plan_of",
    "step_view",
    "when",
    "workflow_view",
]


def when(text: str | None) -> str:
    """A ledger time (ISO 8601 in UTC with microseconds, docs/ledger.md) as
    ``2026-01-31 09:00:00``."""
    return "" if not text else f"{text[:10]} {text[11:19]}"


def duration(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(ms / 1000, 60)
    return f"{minutes:.0f} min {seconds:.0f} s"


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("statefn.serve", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship in the package: no stat of each file per page
    )
    env.filters.update(when=when, duration=duration, short_json=short_json, edge_text=edge_text)
    return env


@functools.lru_cache(maxsize=128)
def _normalised(plan_json: bytes) -> Plan | None:
    """A workflow's plan in normal form, for drawing (cached: files change rarely)."""
    try:
        return normalise(orjson.loads(plan_json))
    except StatefnError:
        return None


def plan_of(workflow: Workflow) -> Plan | None:
    if workflow.plan is None:
        return None
    return _normalised(orjson.dumps(workflow.plan, option=orjson.OPT_SORT_KEYS))


def _trigger_text(workflow: Workflow, trigger: Trigger) -> list[str]:
    texts = []
    if trigger.webhook:
        signed = ", signed" if trigger.secret else ""
        texts.append(f"webhook POST /hooks/{workflow.name}/{trigger.step_id}{signed}")
    if trigger.cron:
        texts.append(f"cron {trigger.cron} (UTC, step {trigger.step_id})")
    return texts


@dataclass
class WorkflowView:
    """What the pages show of a workflow."""

    name: str
    file: str
    errors: list[str]
    triggers: list[str]
    steps: list[Step]
    graph: Markup | None
    last_run: RunRecord | None = None


def workflow_view(workflow: Workflow, last_run: RunRecord | None = None) -> WorkflowView:
    plan = plan_of(workflow)
    return WorkflowView(
        name=workflow.name,
        file=workflow.file.as_posix(),
        errors=list(workflow.errors),
        triggers=[
            text for trigger in workflow.triggers for text in _trigger_text(workflow, trigger)
        ],
        steps=[] if plan is None else list(plan.steps.values()),
        graph=None if plan is None else draw(plan),
        last_run=last_run,
    )


@dataclass
class StepView:
    """The chosen step run of a run page: its states, the diff, or why one is missing."""

    record: StepRecord | None
    input: Markup = field(default_factory=Markup)
    output: Markup = field(default_factory=Markup)
    changes: Diff | None = None
    diff_note: str = ""


def _state_tree(
    service: Service, step: StepRecord, which: Literal["input", "output"]
) -> tuple[Any, Markup]:
    """A step run's state and its tree; ``None`` and a note when there is none to show."""
    try:
        state = service.ledger.state(step.run_id, step.key, which=which)
    except StateWithheldError as error:
        return None, Markup("<p class='muted'>{}</p>").format(error.message)
    if state is None:
        note = "Not recorded."
        if which == "output":
            note = "Still running." if step.reason is None else "No output state: see the error."
        return None, Markup("<p class='muted'>{}</p>").format(note)
    return state, tree(state, which)


def step_view(service: Service, record: RunRecord, key: str | None) -> StepView:
    # Without a choice, the step a reader wants first: the first that did not succeed,
    # else the last.
    unhappy = [step for step in record.steps if step.reason not in ("success", None)]
    if key is not None:
        chosen = service.step(record.run_id, key)
    elif unhappy or record.steps:
        chosen = (unhappy or record.steps)[0 if unhappy else -1]
    else:
        return StepView(None)
    before, input_tree = _state_tree(service, chosen, "input")
    after, output_tree = _state_tree(service, chosen, "output")
    both = before is not None and after is not None
    note = "" if both else "Nothing to compare: the input or the output state is missing."
    return StepView(chosen, input_tree, output_tree, diff(before, after) if both else None, note)
