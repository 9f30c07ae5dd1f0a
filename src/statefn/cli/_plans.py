"""Loading what ``statefn run``, ``compile`` and ``validate`` are given.

A path names a workflow (``.json``, ``.yaml``: a plan, or just its workflow object) or a
single job (``.py``), which becomes a one-step plan. Values in a plan that are relative paths
are read relative to the plan file: an ``expression`` or ``workflow.globals`` ending in
``.py`` becomes that file's text; a ``state`` or ``configuration`` ending in ``.json``,
``.yaml`` or ``.yml`` becomes that file's data; a ``state`` ending in ``.csv`` or ``.txt``
becomes ``{"data": {"text": <the file's text>}}`` (jobs cannot read files themselves). ``-a`` adaptor specs fill a job's step or
override the adaptors of a workflow's steps. A workflow without a name (a job's among them) is
named after its file's stem.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._exits import CliError
from ._files import YAML_SUFFIXES, read_data, read_text

__all__ = [
    "AdaptorSpec",
    "LoadedPlan",
    "check_adaptor_paths",
    "check_credentials",
    "linker_option",
    "load_plan",
    "parse_adaptor_spec",
]

# NAME, NAME@VERSION or NAME=PATH; compiled on first use (only -a needs it).
_SPEC = r"^(?P<name>[A-Za-z_][\w.-]*)(?:@(?P<version>[^=\s]+))?(?:=(?P<path>.+))?$"
_DATA_SUFFIXES = (".json", *YAML_SUFFIXES)
_PLAN_SUFFIXES = (*_DATA_SUFFIXES, ".py")
_TEXT_SUFFIXES = (".csv", ".txt")  # a state file of these is text, not data
_PATH_PREFIXES = ("./", "../", "/", "~/")


@dataclass(frozen=True)
class AdaptorSpec:
    """One ``-a`` value: ``name``, ``name@version``, ``name=PATH`` or ``name@version=PATH``."""

    name: str
    version: str | None = None
    path: Path | None = None

    @property
    def reference(self) -> str:
        """``name@version``, or ``name`` without a version: what a step's ``adaptors`` lists."""
        return f"{self.name}@{self.version}" if self.version else self.name


def parse_adaptor_spec(text: str) -> AdaptorSpec:
    """Parse a ``-a`` value (an argparse ``type``: a bad value is a usage error)."""
    match = re.match(_SPEC, text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid adaptor {text!r}: expected NAME, NAME@VERSION or NAME=PATH"
        )
    path = match["path"]
    return AdaptorSpec(
        name=match["name"],
        version=match["version"],
        path=_package_folder(match["name"], Path(path).expanduser().resolve()) if path else None,
    )


def _package_folder(name: str, path: Path) -> Path:
    """The adaptor's package for ``path``: itself, or the one package of a project folder
    (one with a ``pyproject.toml``, its package beside it or under ``src/``)."""
    if (path / "__init__.py").is_file() or not (path / "pyproject.toml").is_file():
        return path
    packages = [
        folder
        for parent in (path, path / "src")
        if parent.is_dir()
        for folder in sorted(parent.iterdir())
        if (folder / "__init__.py").is_file()
    ]
    named = [folder for folder in packages if folder.name in (name, f"statefn_adaptor_{name}")]
    chosen = named or packages
    return chosen[0] if len(chosen) == 1 else path


@dataclass
class LoadedPlan:
    """A plan read from disk, with its files read in and its steps normalised."""

    path: Path
    plan: dict[str, Any]
    """The plan to hand to ``run``: as written, with referenced files read in."""
    steps: list[dict[str, Any]]
    """The validated steps, every one with its ``id``, in plan order."""
    job_files: dict[str, Path] = field(default_factory=dict)
    """Step id -> the ``.py`` file its expression was read from."""

    @property
    def is_job(self) -> bool:
        return self.path.suffix == ".py"

    @property
    def workflow_name(self) -> str:
        """The workflow's name, else the plan file's stem: what the step cache, the ledger
        and ``statefn serve`` call the workflow."""
        name = self.plan.get("workflow", {}).get("name")
        return name if isinstance(name, str) and name.strip() else self.path.stem

    def step(self, step_id: str) -> dict[str, Any]:
        return next(step for step in self.steps if step["id"] == step_id)

    def source_label(self, step_id: str) -> str:
        """How diagnostics name the source of a step's job: its file, or plan#step."""
        job_file = self.job_files.get(step_id)
        if job_file is not None:
            return str(job_file)
        return str(self.path) if self.is_job else f"{self.path}#{step_id}"

    def source_text(self, step_id: str) -> str | None:
        expression = self.step(step_id).get("expression")
        return expression if isinstance(expression, str) else None


def load_plan(path: Path, adaptors: Sequence[AdaptorSpec] = ()) -> LoadedPlan:
    """Read the plan or job at ``path``, apply ``-a`` specs, and validate it.

    Raises ``CliError`` for an unreadable file, a broken document or an invalid plan.
    """
    if path.suffix not in _PLAN_SUFFIXES:
        raise CliError(f"{path}: unsupported file type ({', '.join(_PLAN_SUFFIXES)})")
    check_adaptor_paths(adaptors)
    job_files: dict[int, Path] = {}
    if path.suffix == ".py":
        step: dict[str, Any] = {"id": path.stem, "expression": read_text(path)}
        if adaptors:
            step["adaptors"] = [spec.reference for spec in adaptors]
        plan: dict[str, Any] = {"workflow": {"steps": [step]}}
    else:
        plan = _as_plan(read_data(path), path)
        job_files = _read_referenced_files(plan, path.parent)
        _override_adaptors(plan, adaptors)
    steps = _validated_steps(plan, path)
    named_files = {steps[index]["id"]: file for index, file in job_files.items()}
    loaded = LoadedPlan(path=path, plan=plan, steps=steps, job_files=named_files)
    # Runs are recorded under the workflow's name: one without is named after its file.
    plan["workflow"]["name"] = loaded.workflow_name
    return loaded


def linker_option(adaptors: Iterable[AdaptorSpec], repo_dir: Path) -> dict[str, Any]:
    """The ``linker`` option of ``run``: local adaptor paths from ``-a``, and the repo."""
    modules: dict[str, Any] = {}
    for spec in adaptors:
        if spec.path is not None:
            module: dict[str, str] = {"path": str(spec.path)}
            if spec.version:
                module["version"] = spec.version
            modules[spec.name] = module
    return {"modules": modules, "repo": str(repo_dir)}


def check_credentials(loaded: LoadedPlan, credentials: Mapping[str, Any] | None) -> None:
    """Fail before the run when a step names a credential the credentials file lacks."""
    known = set(credentials or ())
    missing = [
        (step["id"], step["configuration"])
        for step in loaded.steps
        if isinstance(step.get("configuration"), str) and step["configuration"] not in known
    ]
    if not missing:
        return
    lines = [f"  step {step_id}: {credential_id!r}" for step_id, credential_id in missing]
    if credentials is None:
        hint = "Pass --credentials FILE, a JSON or YAML map of credential id to configuration."
    else:
        hint = "The credentials file defines: " + (", ".join(sorted(known)) or "nothing")
    raise CliError("Unknown credential:\n" + "\n".join(lines) + "\n" + hint)


def _as_plan(document: Any, path: Path) -> dict[str, Any]:
    if not isinstance(document, dict):
        kind = type(document).__name__ if document is not None else "an empty document"
        raise CliError(f"{path}: expected a plan (an object with a workflow), found {kind}")
    if "workflow" not in document and ("steps" in document or "jobs" in document):
        # A bare workflow object is accepted as a plan with default options.
        return {"workflow": document}
    return document


def _is_file_reference(value: Any, suffixes: tuple[str, ...]) -> bool:
    if not isinstance(value, str) or "\n" in value:
        return False
    return value.startswith(_PATH_PREFIXES) or value.endswith(suffixes)


def _read_referenced_files(plan: dict[str, Any], base: Path) -> dict[int, Path]:
    """Read the files a plan refers to, in place; returns step index -> job file."""
    workflow = plan.get("workflow")
    if not isinstance(workflow, dict):
        return {}
    if _is_file_reference(workflow.get("globals"), (".py",)):
        workflow["globals"] = read_text(_beside(base, workflow["globals"]))
    steps = workflow.get("steps", workflow.get("jobs"))
    job_files: dict[int, Path] = {}
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        if not isinstance(step, dict):
            continue
        if _is_file_reference(step.get("expression"), (".py",)):
            job_files[index] = _beside(base, step["expression"])
            step["expression"] = read_text(job_files[index])
        state = step.get("state")
        if isinstance(state, str) and "\n" not in state and state.endswith(_TEXT_SUFFIXES):
            step["state"] = {"data": {"text": read_text(_beside(base, state))}}
        for key in ("state", "configuration"):
            if _is_file_reference(step.get(key), _DATA_SUFFIXES):
                step[key] = read_data(_beside(base, step[key]))
    return job_files


def _beside(base: Path, reference: str) -> Path:
    return Path(os.path.normpath(base / Path(reference).expanduser()))


def _override_adaptors(plan: dict[str, Any], adaptors: Sequence[AdaptorSpec]) -> None:
    """``-a name@version`` on a workflow replaces that adaptor's version in every step."""
    versioned = {spec.name: spec for spec in adaptors if spec.version}
    if not versioned:
        return
    steps = plan.get("workflow", {}).get("steps", plan.get("workflow", {}).get("jobs"))
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict):
            continue
        listed = step.get("adaptors", step.get("adaptor"))
        names = [listed] if isinstance(listed, str) else listed
        if not isinstance(names, list):
            continue
        step.pop("adaptor", None)
        step["adaptors"] = [_override(name, versioned) for name in names]


def _override(reference: Any, versioned: Mapping[str, AdaptorSpec]) -> Any:
    if not isinstance(reference, str):
        return reference
    spec = versioned.get(reference.split("@", 1)[0])
    return spec.reference if spec else reference


def check_adaptor_paths(adaptors: Iterable[AdaptorSpec]) -> None:
    """Fail (exit 3) when a ``-a NAME=PATH`` is not an adaptor a run could load."""
    for spec in adaptors:
        if spec.path is None:
            continue
        if not spec.path.exists():
            raise CliError(f"Adaptor {spec.name}: path not found: {spec.path}")
        if not ((spec.path / "__init__.py").is_file() or spec.path.suffix == ".py"):
            raise CliError(
                f"Adaptor {spec.name}: {spec.path} is not an adaptor: give its package folder "
                "(holding __init__.py), its module file (.py) or its project folder (holding "
                "pyproject.toml and one package)"
            )


def _validated_steps(plan: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    from statefn import ValidationError, validate_plan

    try:
        # A copy: whatever validation fills in, the plan handed to run stays as written.
        normalised = validate_plan(copy.deepcopy(plan))
    except ValidationError as error:
        problems = error.message.splitlines()
        if len(problems) == 1:
            raise CliError(f"Invalid plan {path}: {error.message}") from None
        raise CliError(f"Invalid plan {path}:\n" + "\n".join(f"  {p}" for p in problems)) from None
    steps: list[dict[str, Any]] = normalised["workflow"]["steps"]
    return steps
