"""Plans: validation and normalisation.

``normalise(plan)`` checks a plan dict (contract section 1) and returns a ``Plan``: steps
with ids, edges with compiled conditions, the start step. Every problem is a
``ValidationError`` whose message names the problem and the path of the offending field
(``workflow.steps[1].next``); nothing runs until the plan is valid. Unknown keys are found
first, all at once, each with the closest known key; keys beginning with ``x-`` are the
user's own and are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ._errors import CompileError, ValidationError
from ._sandbox import RestrictedExpression, compile_expression
from ._suggest import did_you_mean

__all__ = ["SPECIAL_CONDITIONS", "Condition", "Edge", "Plan", "Retry", "Step", "normalise"]

# Through the Python API a condition may also be a callable of the upstream state.
Condition = str | bool | Callable[[dict[str, Any]], Any] | None

# The keys each object of a plan may hold (contract section 1).
_PLAN_KEYS = ("id", "workflow", "options")
_WORKFLOW_KEYS = ("id", "name", "steps", "jobs", "start", "globals", "credentials")
_STEP_KEYS = (
    "id", "name", "expression", "adaptors", "adaptor", "configuration", "state", "next",
    "retry", "linker", "webhook", "cron",
)  # fmt: skip
_EDGE_KEYS = ("condition", "label", "disabled")
_RETRY_KEYS = ("attempts", "backoff_ms", "factor")
_LINKER_KEYS = ("path", "version")
_OPTION_KEYS = ("start", "end", "timeout", "concurrency")
_USER_PREFIX = "x-"

# Conditions that test the upstream step's error record instead of running Python.
SPECIAL_CONDITIONS: dict[str, str] = {
    "always": "always",
    "on_job_success": "on_job_success",
    "on_upstream_success": "on_job_success",
    "on_job_failure": "on_job_failure",
    "on_upstream_fail": "on_job_failure",
}


@dataclass(frozen=True, slots=True)
class Edge:
    """An edge to ``target``; followed when ``condition`` holds for the upstream state."""

    target: str
    condition: Condition
    label: str | None = None
    disabled: bool = False
    compiled: RestrictedExpression | None = None

    @property
    def followable(self) -> bool:
        """Whether the edge can ever be followed."""
        return not self.disabled and self.condition is not None and self.condition is not False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"condition": self.condition}
        if self.label is not None:
            out["label"] = self.label
        if self.disabled:
            out["disabled"] = True
        return out


@dataclass(frozen=True, slots=True)
class Retry:
    """How often a failed step runs again and how long it waits before each retry."""

    attempts: int
    backoff_ms: float = 1000
    factor: float = 2


@dataclass(slots=True)
class Step:
    """A step of the workflow: a job (``expression``) with its adaptors, inputs and
    outgoing edges, or a trigger (no expression)."""

    id: str
    name: str | None = None
    expression: str | list[Callable[..., Any]] | None = None
    adaptors: list[str] = field(default_factory=list)
    configuration: dict[str, Any] | str | None = None
    state: dict[str, Any] | str | None = None
    next: list[Edge] = field(default_factory=list)
    retry: Retry | None = None
    linker: dict[str, dict[str, str]] | None = None
    webhook: bool | dict[str, str] | None = None
    cron: str | None = None

    @property
    def is_trigger(self) -> bool:
        return self.expression is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        for key in ("name", "expression", "configuration", "state", "linker", "webhook", "cron"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.adaptors:
            out["adaptors"] = list(self.adaptors)
        if self.next:
            out["next"] = {edge.target: edge.to_dict() for edge in self.next}
        if self.retry is not None:
            retry = self.retry
            out["retry"] = {
                "attempts": retry.attempts,
                "backoff_ms": retry.backoff_ms,
                "factor": retry.factor,
            }
        return out


@dataclass(slots=True)
class Plan:
    """A workflow in normal form: its steps by id, where it starts and ends, and its
    options."""

    id: str | None
    steps: dict[str, Step]
    start: str
    end: str | None
    name: str | None = None
    workflow_id: str | None = None
    globals: str | None = None
    credentials: dict[str, Any] | None = None
    timeout_ms: float | None = None
    concurrency: int | None = None

    def to_dict(self) -> dict[str, Any]:
        workflow: dict[str, Any] = {
            "steps": [step.to_dict() for step in self.steps.values()],
            "start": self.start,
        }
        fields: tuple[tuple[str, Any], ...] = (
            ("id", self.workflow_id),
            ("name", self.name),
            ("globals", self.globals),
            ("credentials", self.credentials),
        )
        workflow.update((key, value) for key, value in fields if value is not None)
        options: dict[str, Any] = {"start": self.start}
        fields = (
            ("end", self.end),
            ("timeout", self.timeout_ms),
            ("concurrency", self.concurrency),
        )
        options.update((key, value) for key, value in fields if value is not None)
        out: dict[str, Any] = {"workflow": workflow, "options": options}
        if self.id is not None:
            out["id"] = self.id
        return out


def _type_name(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _expect(value: Any, kinds: type | tuple[type, ...], path: str, what: str) -> None:
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _tuple(kinds)):
        raise ValidationError(
            f"{path} must be {what}, got {_type_name(value)}", details={"path": path}
        )


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _optional_str(raw: Mapping[str, Any], key: str, path: str) -> str | None:
    value = raw.get(key)
    if value is not None:
        _expect(value, str, f"{path}.{key}", "a string")
    return value


def _expression(value: Any, path: str) -> str | list[Callable[..., Any]] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(callable(op) for op in value):
        return list(value)
    if isinstance(value, list):
        index = next(i for i, op in enumerate(value) if not callable(op))
        raise ValidationError(
            f"{path}[{index}] must be an operation (a callable), got {_type_name(value[index])}",
            details={"path": f"{path}[{index}]"},
        )
    raise ValidationError(
        f"{path} must be job source (a string) or a list of operations, got {_type_name(value)}",
        details={"path": path},
    )


def _adaptors(raw: Mapping[str, Any], path: str) -> list[str]:
    if raw.get("adaptors") is not None:
        value = raw["adaptors"]
        _expect(value, list, f"{path}.adaptors", "a list of adaptor names")
        for index, spec in enumerate(value):
            _expect(spec, str, f"{path}.adaptors[{index}]", "an adaptor name such as 'http@1.0.0'")
        return list(value)
    if raw.get("adaptor") is not None:
        _expect(raw["adaptor"], str, f"{path}.adaptor", "an adaptor name such as 'http@1.0.0'")
        return [raw["adaptor"]]
    return []


def _object_or_id(raw: Mapping[str, Any], key: str, path: str) -> dict[str, Any] | str | None:
    value = raw.get(key)
    if value is not None:
        _expect(value, (dict, str), f"{path}.{key}", "an object or a string id")
    return value


def _retry(value: Any, path: str) -> Retry | None:
    if value is None:
        return None
    _expect(value, dict, path, 'an object such as {"attempts": 3}')
    attempts = value.get("attempts", 1)
    _expect(attempts, int, f"{path}.attempts", "a whole number")
    if attempts < 1:
        raise ValidationError(
            f"{path}.attempts must be at least 1, got {attempts}",
            details={"path": f"{path}.attempts"},
        )
    backoff = value.get("backoff_ms", 1000)
    factor = value.get("factor", 2)
    _expect(backoff, (int, float), f"{path}.backoff_ms", "a number of milliseconds")
    _expect(factor, (int, float), f"{path}.factor", "a number")
    if backoff < 0 or factor <= 0:
        raise ValidationError(
            f"{path}: backoff_ms must be >= 0 and factor > 0", details={"path": path}
        )
    return Retry(attempts, backoff, factor)


def _linker(value: Any, path: str) -> dict[str, dict[str, str]] | None:
    if value is None:
        return None
    _expect(value, dict, path, "an object of {adaptor: {path, version}}")
    for name, spec in value.items():
        _expect(spec, dict, f"{path}.{name}", "an object with 'path' and/or 'version'")
        for key, item in spec.items():
            _expect(item, str, f"{path}.{name}.{key}", "a string")
    return {name: dict(spec) for name, spec in value.items()}


def _webhook(value: Any, path: str) -> bool | dict[str, str] | None:
    if value is None:
        return None
    what = 'true, false or {"secret": "credential id"}'
    if isinstance(value, bool):
        return value
    _expect(value, dict, path, what)
    problems = _unknown(value, ("secret",), path)
    if problems:
        raise ValidationError(problems[0], details={"path": path})
    secret = value.get("secret")
    if not isinstance(secret, str) or not secret:
        raise ValidationError(
            f"{path} must be {what}: the secret names the credential whose value signs "
            "the requests",
            details={"path": path},
        )
    return {"secret": secret}


def _cron(value: Any, path: str) -> str | None:
    if value is None:
        return None
    _expect(value, str, path, 'a five-field cron expression such as "*/15 * * * *"')
    fields = value.split()
    problem = None
    if len(fields) != 5:
        problem = f"has {len(fields)} field{'s' if len(fields) != 1 else ''}, not 5"
    else:
        # croniter is imported only by plans that have a schedule.
        from croniter import croniter

        if not croniter.is_valid(value):
            problem = "is not a valid cron expression"
    if problem:
        raise ValidationError(
            f"{path}: {value!r} {problem}; write minute hour day-of-month month day-of-week "
            'in UTC, such as "*/15 * * * *" (every 15 minutes) or "0 6 * * 1-5" (06:00 on '
            "weekdays)",
            details={"path": path},
        )
    return str(value)


def _edges(step_id: str, value: Any, path: str) -> list[Edge]:
    if value is None:
        return []
    if isinstance(value, str):
        return [Edge(value, True)]
    _expect(value, dict, path, "a step id or an object of edges")
    edges = []
    for target, raw in value.items():
        edge_path = f"{path}.{target}"
        condition: Condition
        if isinstance(raw, bool | str) or callable(raw):
            condition, label, disabled = raw, None, False
        elif isinstance(raw, dict):
            condition = raw.get("condition")
            if not callable(condition):
                _expect(
                    condition,
                    (str, bool, type(None)),
                    f"{edge_path}.condition",
                    "a condition string or a boolean",
                )
            label = _optional_str(raw, "label", edge_path)
            disabled = raw.get("disabled", False)
            _expect(disabled, bool, f"{edge_path}.disabled", "a boolean")
        else:
            raise ValidationError(
                f"{edge_path} must be true, false, a condition string or an object, "
                f"got {_type_name(raw)}",
                details={"path": edge_path},
            )
        edges.append(Edge(target, condition, label, disabled))
    return edges


def _compile_conditions(steps: dict[str, Step]) -> None:
    """Compile every condition string; every one that fails is named in one error."""
    problems: list[dict[str, Any]] = []
    for step in steps.values():
        for index, edge in enumerate(step.next):
            condition = edge.condition
            if not isinstance(condition, str) or condition in SPECIAL_CONDITIONS:
                continue
            try:
                compiled = compile_expression(condition, f"<edge {step.id}->{edge.target}>")
            except CompileError as error:
                problems.append(
                    {
                        "message": f"Failed to compile edge condition {step.id}->{edge.target} "
                        f"({error.message})",
                        "path": f"{step.id}.next.{edge.target}",
                        "condition": condition,
                    }
                )
                continue
            step.next[index] = replace(edge, compiled=compiled)
    if problems:
        first = problems[0]
        raise ValidationError(
            "\n".join(problem["message"] for problem in problems),
            details={"path": first["path"], "condition": first["condition"], "problems": problems},
        )


def _unknown(raw: Any, known: tuple[str, ...], path: str) -> list[str]:
    """A problem for each key of ``raw`` (if an object) that is not in ``known``."""
    if not isinstance(raw, dict):
        return []
    problems = []
    for key in raw:
        if key in known or (isinstance(key, str) and key.startswith(_USER_PREFIX)):
            continue
        hint = did_you_mean(str(key), known) or f" (known keys: {', '.join(known)})"
        problems.append(f"{path}.{key}: unknown key{hint}")
    return problems


def _unknown_in_step(raw: Any, path: str) -> list[str]:
    if not isinstance(raw, dict):
        return []
    problems = _unknown(raw, _STEP_KEYS, path)
    problems += _unknown(raw.get("retry"), _RETRY_KEYS, f"{path}.retry")
    linker = raw.get("linker")
    for name, spec in linker.items() if isinstance(linker, dict) else ():
        problems += _unknown(spec, _LINKER_KEYS, f"{path}.linker.{name}")
    edges = raw.get("next")
    for target, edge in edges.items() if isinstance(edges, dict) else ():
        problems += _unknown(edge, _EDGE_KEYS, f"{path}.next.{target}")
    return problems


def _check_unknown_keys(plan: dict[str, Any]) -> None:
    """Raise one ``ValidationError`` listing every unknown key of the plan."""
    problems = _unknown(plan, _PLAN_KEYS, "plan")
    workflow = plan.get("workflow")
    problems += _unknown(workflow, _WORKFLOW_KEYS, "workflow")
    if isinstance(workflow, dict):
        key = "steps" if "steps" in workflow else "jobs"
        steps = workflow.get(key)
        for index, raw in enumerate(steps if isinstance(steps, list) else ()):
            problems += _unknown_in_step(raw, f"workflow.{key}[{index}]")
    problems += _unknown(plan.get("options"), _OPTION_KEYS, "options")
    if problems:
        raise ValidationError("\n".join(problems), details={"unknown_keys": problems})


def _step(raw: Any, step_id: str, path: str) -> Step:
    for key in ("webhook", "cron"):
        if raw.get("expression") is not None and raw.get(key) not in (None, False):
            raise ValidationError(
                f"{path}.{key}: only a trigger (a step without expression) starts runs; "
                f"move {key!r} to a trigger step whose next is this step",
                details={"path": f"{path}.{key}"},
            )
    if raw.get("expression") is None and raw.get("state") is not None:
        raise ValidationError(
            f"{path}.state: a trigger (a step without expression) takes no state; "
            "give it to the step the trigger leads to, or pass it as the input state",
            details={"path": f"{path}.state"},
        )
    return Step(
        id=step_id,
        name=_optional_str(raw, "name", path),
        expression=_expression(raw.get("expression"), f"{path}.expression"),
        adaptors=_adaptors(raw, path),
        configuration=_object_or_id(raw, "configuration", path),
        state=_object_or_id(raw, "state", path),
        next=_edges(step_id, raw.get("next"), f"{path}.next"),
        retry=_retry(raw.get("retry"), f"{path}.retry"),
        linker=_linker(raw.get("linker"), f"{path}.linker"),
        webhook=_webhook(raw.get("webhook"), f"{path}.webhook"),
        cron=_cron(raw.get("cron"), f"{path}.cron"),
    )


def _steps(workflow: Mapping[str, Any]) -> dict[str, Step]:
    key = "steps" if "steps" in workflow else "jobs"
    raw_steps = workflow.get(key)
    if raw_steps is None:
        raise ValidationError(
            "workflow.steps is missing: a workflow needs a list of steps",
            details={"path": "workflow.steps"},
        )
    _expect(raw_steps, list, f"workflow.{key}", "a list of steps")
    if not raw_steps:
        raise ValidationError(
            f"workflow.{key} is empty: a workflow needs at least one step",
            details={"path": f"workflow.{key}"},
        )
    steps: dict[str, Step] = {}
    generated = 0
    for index, raw in enumerate(raw_steps):
        path = f"workflow.{key}[{index}]"
        _expect(raw, dict, path, "an object")
        step_id = raw.get("id")
        if step_id is None:
            generated += 1
            step_id = f"job-{generated}"
        else:
            _expect(step_id, str, f"{path}.id", "a string")
            if not step_id:
                raise ValidationError(f"{path}.id must not be empty", details={"path": path})
        if step_id in steps:
            raise ValidationError(
                f"Duplicate step id: {step_id} ({path})", details={"path": f"{path}.id"}
            )
        steps[step_id] = _step(raw, step_id, path)
    return steps


def _check_targets(steps: dict[str, Step]) -> None:
    for step in steps.values():
        for edge in step.next:
            if edge.target not in steps:
                hint = did_you_mean(edge.target, steps)
                raise ValidationError(
                    f"Cannot find job: {edge.target} (in the next of step {step.id}){hint}",
                    details={"path": f"{step.id}.next.{edge.target}"},
                )


def _check_cycles(steps: dict[str, Step]) -> None:
    """Depth-first search over the edges that can be followed; a back edge is a cycle."""

    def targets(step_id: str) -> list[str]:
        return [edge.target for edge in steps[step_id].next if edge.followable]

    done: set[str] = set()
    for root in steps:
        if root in done:
            continue
        path = [root]
        pending = [iter(targets(root))]
        while pending:
            target = next(pending[-1], None)
            if target is None:
                pending.pop()
                done.add(path.pop())
            elif target in path:
                cycle = [*path[path.index(target) :], target]
                raise ValidationError(
                    f"Circular dependency: {' -> '.join(cycle)}", details={"cycle": cycle}
                )
            elif target not in done:
                path.append(target)
                pending.append(iter(targets(target)))


def _option_step(value: Any, steps: dict[str, Step], path: str, label: str) -> str | None:
    if value is None:
        return None
    _expect(value, str, path, "a step id")
    if value not in steps:
        raise ValidationError(f"Could not find {label} job: {value}", details={"path": path})
    return str(value)


def _number_option(value: Any, path: str, integer: bool = False) -> Any:
    if value is None:
        return None
    _expect(
        value, int if integer else (int, float), path, "a whole number" if integer else "a number"
    )
    if value <= 0:
        raise ValidationError(f"{path} must be greater than 0, got {value}", details={"path": path})
    return value


def normalise(plan: Any) -> Plan:
    """Check ``plan`` and return its normal form, or raise ``ValidationError``."""
    _expect(plan, dict, "plan", "an object with a 'workflow'")
    workflow = plan.get("workflow")
    _expect(workflow, dict, "workflow", "an object with 'steps'")
    options = plan.get("options") or {}
    _expect(options, dict, "options", "an object")
    _optional_str(plan, "id", "plan")
    _check_unknown_keys(plan)
    steps = _steps(workflow)
    _compile_conditions(steps)
    _check_targets(steps)
    start = _option_step(options.get("start"), steps, "options.start", "start")
    start = start or _option_step(workflow.get("start"), steps, "workflow.start", "start")
    _check_cycles(steps)
    credentials = workflow.get("credentials")
    if credentials is not None:
        _expect(credentials, dict, "workflow.credentials", "an object")
    return Plan(
        id=plan.get("id"),
        steps=steps,
        start=start or next(iter(steps)),
        end=_option_step(options.get("end"), steps, "options.end", "end"),
        name=_optional_str(workflow, "name", "workflow"),
        workflow_id=_optional_str(workflow, "id", "workflow"),
        globals=_optional_str(workflow, "globals", "workflow"),
        credentials=credentials,
        timeout_ms=_number_option(options.get("timeout"), "options.timeout"),
        concurrency=_number_option(options.get("concurrency"), "options.concurrency", True),
    )
