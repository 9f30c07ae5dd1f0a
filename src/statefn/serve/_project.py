"""The project: every workflow file under a folder, validated, and reloaded when files change.

A workflow file is a ``.json``, ``.yaml`` or ``.yml`` file holding a plan (an object with a
``workflow``) or a bare workflow (an object with ``steps``); other data files (input states,
credentials) are left alone. Files are read the way ``statefn run`` reads them: job files and
state files named in the plan are read in, relative to the plan. ``Project.refresh`` polls
the modification times of the folder's files and reloads when any changed; a workflow whose
file stops validating keeps its name and is listed with its errors (its triggers paused).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statefn import CompileError, compile_job
from statefn.cli._exits import CliError
from statefn.cli._files import read_data
from statefn.cli._plans import LoadedPlan, load_plan

__all__ = ["Edge", "Project", "Trigger", "Workflow"]

WORKFLOW_SUFFIXES = (".json", ".yaml", ".yml")
# Folders never searched for workflows: tool and package folders, and hidden ones (the
# ledger lives in .statefn).
_SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__", "venv", "site-packages"})


@dataclass(frozen=True)
class Trigger:
    """How runs of a workflow start from one of its trigger steps (contract section 1)."""

    step_id: str
    webhook: bool = False
    secret: str | None = None  # the credential id whose value signs webhook requests
    cron: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_id,
            "webhook": self.webhook,
            "signed": self.secret is not None,
            "cron": self.cron,
        }


@dataclass(frozen=True)
class Edge:
    """An edge of the step graph, as drawn: ``condition`` is ``None`` for an unconditional
    edge and the condition's text otherwise."""

    source: str
    target: str
    condition: str | None
    label: str | None
    disabled: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.target,
            "condition": self.condition,
            "label": self.label,
            "disabled": self.disabled,
        }


@dataclass
class Workflow:
    """One workflow file: its plan (files read in) and steps, or the errors that stop it."""

    name: str
    file: Path  # relative to the project folder
    plan: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    job_files: dict[str, Path] = field(default_factory=dict)
    # The ids of the steps its file writes as webhook triggers, read when it was loaded
    # (for a workflow with errors, whose triggers are paused); None when the file could not
    # be read to say.
    written_webhooks: frozenset[str] | None = frozenset()
    _run_plans: dict[str | None, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def valid(self) -> bool:
        return self.plan is not None and not self.errors

    @property
    def triggers(self) -> list[Trigger]:
        """The triggers that start runs; none while the workflow has errors (paused)."""
        if not self.valid:
            return []
        found = []
        for step in self.steps:
            webhook = step.get("webhook") or False
            if step.get("expression") is None and (webhook or step.get("cron")):
                secret = webhook.get("secret") if isinstance(webhook, dict) else None
                found.append(Trigger(step["id"], bool(webhook), secret, step.get("cron")))
        return found

    @property
    def edges(self) -> list[Edge]:
        return [
            Edge(step["id"], target, *_edge_parts(edge))
            for step in self.steps
            for target, edge in (step.get("next") or {}).items()
        ]

    def step(self, step_id: str) -> dict[str, Any] | None:
        return next((step for step in self.steps if step["id"] == step_id), None)

    def run_plan(self, start: str | None = None) -> dict[str, Any]:
        """The plan to submit: named after the workflow (the ledger files its runs under
        that name), starting at ``start`` when given. Made once per start step and shared
        by every run (the engine reads a plan, never changes it): do not change it."""
        if self.plan is None:
            raise ValueError(f"workflow {self.name} has errors")
        plan = self._run_plans.get(start)
        if plan is None:
            plan = copy.deepcopy(self.plan)
            plan["workflow"]["name"] = self.name
            if start is not None:
                plan["options"] = {**(plan.get("options") or {}), "start": start}
            self._run_plans[start] = plan
        return plan

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file.as_posix(),
            "valid": self.valid,
            "errors": list(self.errors),
            "steps": [
                {
                    "id": step["id"],
                    "name": step.get("name"),
                    "trigger": step.get("expression") is None,
                    "adaptors": step.get("adaptors", []),
                }
                for step in self.steps
            ],
            "edges": [edge.to_dict() for edge in self.edges],
            "triggers": [trigger.to_dict() for trigger in self.triggers],
        }


def _edge_parts(edge: Any) -> tuple[str | None, str | None, bool]:
    condition = edge.get("condition") if isinstance(edge, dict) else edge
    label = edge.get("label") if isinstance(edge, dict) else None
    disabled = bool(edge.get("disabled")) if isinstance(edge, dict) else False
    return (None if condition is True else str(condition), label, disabled)


class Project:
    """The workflows of one folder. ``refresh()`` reloads them when a file changed."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._workflows: dict[str, Workflow] = {}
        self._names_by_file: dict[Path, str] = {}
        self._seen: dict[Path, tuple[int, int]] | None = None
        self.refresh()

    @property
    def workflows(self) -> list[Workflow]:
        """Every workflow, sorted by name."""
        return sorted(self._workflows.values(), key=lambda workflow: workflow.name)

    def get(self, name: str) -> Workflow | None:
        return self._workflows.get(name)

    def refresh(self) -> bool:
        """Reload every workflow when any file of the folder changed; whether any did."""
        seen = dict(self._files())
        if seen == self._seen:
            return False
        self._seen = seen
        loaded: dict[str, Workflow] = {}
        for path in sorted(seen):
            if path.suffix not in WORKFLOW_SUFFIXES:
                continue
            workflow = self._load(path)
            if workflow is None:
                continue
            taken = loaded.get(workflow.name)
            if taken is not None:
                workflow.errors.append(
                    f"the name {workflow.name!r} is taken by {taken.file.as_posix()}: give "
                    "this workflow another workflow.name"
                )
                workflow.name = workflow.file.as_posix()
            loaded[workflow.name] = workflow
        self._workflows = loaded
        self._names_by_file = {workflow.file: workflow.name for workflow in loaded.values()}
        return True

    def _files(self) -> Iterator[tuple[Path, tuple[int, int]]]:
        for folder, folders, files in os.walk(self.root):
            folders[:] = [
                name
                for name in folders
                if not name.startswith(".") and name not in _SKIPPED_FOLDERS
            ]
            for name in files:
                path = Path(folder, name)
                try:
                    status = path.stat()
                except OSError:
                    continue
                yield path, (status.st_mtime_ns, status.st_size)

    def _problems(self, error: CliError) -> list[str]:
        """The lines of a loading error, one problem each, with paths relative to the
        folder (as the API and the UI show files)."""
        message = error.message.replace(f"{self.root}{os.sep}", "")
        return [line.strip() for line in message.splitlines() if line.strip()]

    def _load(self, path: Path) -> Workflow | None:
        """The workflow in ``path``; ``None`` for a data file that is not a workflow."""
        relative = path.relative_to(self.root)
        known = self._names_by_file.get(relative)
        try:
            document = read_data(path)
        except CliError as error:
            return Workflow(
                known or path.stem, relative, errors=self._problems(error), written_webhooks=None
            )
        if not _looks_like_workflow(document) and known is None:
            return None
        try:
            loaded = load_plan(path)
        except CliError as error:
            name = _declared_name(document) or known or path.stem
            return Workflow(
                name, relative, errors=self._problems(error),
                written_webhooks=_written_webhooks(document),
            )  # fmt: skip
        name = _declared_name(loaded.plan) or path.stem
        errors = _compile_problems(loaded, self.root)
        return Workflow(
            name,
            relative,
            None if errors else loaded.plan,
            loaded.steps,
            errors,
            job_files=loaded.job_files,
            written_webhooks=_written_webhooks({"steps": loaded.steps}),
        )


def _compile_problems(loaded: LoadedPlan, root: Path) -> list[str]:
    """Every problem of every job of the plan, as ``FILE:LINE:COLUMN: message``: a job
    that does not compile stops the workflow before a run or a trigger meets it."""
    problems = []
    for step in loaded.steps:
        source = step.get("expression")
        if not isinstance(source, str):
            continue
        try:
            compile_job(source, adaptors=step.get("adaptors", []))
        except CompileError as error:
            label = os.path.relpath(loaded.source_label(step["id"]), root)
            problems += [f"{label}:{p.line}:{p.column}: {p.message}" for p in error.problems]
    return problems


def _looks_like_workflow(document: Any) -> bool:
    return isinstance(document, dict) and any(
        key in document for key in ("workflow", "steps", "jobs")
    )


def _written_webhooks(document: Any) -> frozenset[str] | None:
    """The ids of the steps ``document`` writes as webhook triggers; None when it has no
    list of steps to tell."""
    workflow = document.get("workflow", document) if isinstance(document, dict) else None
    steps = workflow.get("steps", workflow.get("jobs")) if isinstance(workflow, dict) else None
    if not isinstance(steps, list):
        return None
    return frozenset(
        step["id"]
        for step in steps
        if isinstance(step, dict) and isinstance(step.get("id"), str) and step.get("webhook")
    )


def _declared_name(document: Any) -> str | None:
    if not isinstance(document, dict):
        return None
    workflow = document.get("workflow", document)
    name = workflow.get("name") if isinstance(workflow, dict) else None
    return name.strip() if isinstance(name, str) and name.strip() else None
