"""The step cache: each step's output state, kept on disk to re-run from a step.

``--cache-steps`` writes ``.statefn-cache/<workflow>/<step id>.json`` beside the plan as each
step ends. ``--start X`` or ``--only X`` without ``-s`` reads X's input back: the cached
output of X's first upstream step (in plan order) that has one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from ._exits import CliError
from ._files import read_data

__all__ = ["CACHE_DIR", "StepCache", "upstream_steps"]

CACHE_DIR = ".statefn-cache"
_UNSAFE = r"[^\w.\- ]"


def _file_name(text: str) -> str:
    # Ids and names may hold any character; a file name may not (a '/' would nest folders).
    safe = re.sub(_UNSAFE, "_", text).strip(" .")
    return safe or "_"


class StepCache:
    """The cached output states of one workflow's steps."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def beside(cls, plan_path: Path, workflow_name: str) -> StepCache:
        """The cache of the workflow ``workflow_name`` whose plan file is ``plan_path``."""
        return cls(plan_path.parent / CACHE_DIR / _file_name(workflow_name))

    def path(self, step_id: str) -> Path:
        return self.directory / f"{_file_name(step_id)}.json"

    def clear(self) -> None:
        """Forget every cached state of this workflow."""
        if self.directory.is_dir():
            for cached in self.directory.glob("*.json"):
                cached.unlink()

    def write(self, step_id: str, state: Any) -> Path:
        """Keep ``state`` (a JSON value, or its JSON as bytes) as the output of ``step_id``;
        returns the file written."""
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(step_id)
        # Write then rename, so an interrupted run never leaves half a file to read back.
        partial = target.with_suffix(".json.partial")
        partial.write_bytes(
            state if isinstance(state, bytes) else orjson.dumps(state, option=orjson.OPT_INDENT_2)
        )
        partial.replace(target)
        return target

    def input_for(self, step_id: str, steps: Sequence[dict[str, Any]]) -> tuple[Path, Any] | None:
        """The cached input of ``step_id`` and the file it came from.

        ``None`` when the step has no upstream step (its input is the default state);
        a ``CliError`` when it has some but none of them is cached.
        """
        upstream = upstream_steps(step_id, steps)
        if not upstream:
            return None
        for upstream_id in upstream:
            cached = self.path(upstream_id)
            if cached.is_file():
                return cached, read_data(cached)
        expected = "\n".join(f"  {self.path(upstream_id)}" for upstream_id in upstream)
        raise CliError(
            f"No cached input for step {step_id}: none of its upstream steps has cached "
            f"output. Looked for:\n{expected}\n"
            "Run the workflow with --cache-steps first, or pass the input with -s FILE."
        )


def upstream_steps(step_id: str, steps: Sequence[dict[str, Any]]) -> list[str]:
    """The ids of the steps with an edge to ``step_id`` that may be followed, in plan order."""
    upstream = []
    for step in steps:
        target = step.get("next")
        if target == step_id or (isinstance(target, dict) and _followable(target.get(step_id))):
            upstream.append(step["id"])
    return upstream


def _followable(edge: Any) -> bool:
    # Normalised edges are objects; the plan as written may also hold true/false/strings.
    if isinstance(edge, dict):
        return not edge.get("disabled") and edge.get("condition") not in (None, False)
    return edge is not None and edge is not False
