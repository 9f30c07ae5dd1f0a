"""The keyword options of ``run`` and ``run_async``, checked once before a run starts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._errors import InputError
from ._events import EventHandler
from ._jobscope import BUILTIN_NAMES

__all__ = ["DEFAULT_STATE_LIMIT_MB", "RunOptions", "parse_options", "silent_logger"]

Resolver = Callable[[str], Any]

DEFAULT_PROPS_TO_REMOVE = ("configuration",)
DEFAULT_STATE_LIMIT_MB = 500

# Names of job scope the ``globals`` option may not replace: the built-ins, ``S`` and
# ``console`` (OpenFn likewise keeps its own console, timers and parseInt/parseFloat).
RESERVED_NAMES = BUILTIN_NAMES | {"S", "console"}

# How a step's state reaches job-complete and job-error payloads: a decoded copy, or the
# state's JSON (bytes, as the step's output was sealed) for handlers that rarely need it.
_EVENT_STATES = ("copy", "json")


def silent_logger(name: str) -> logging.Logger:
    """A logger that prints nothing and is not registered in the logging tree."""
    logger = logging.Logger(name, level=logging.CRITICAL + 1)
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


@dataclass(slots=True)
class RunOptions:
    """The checked keyword options of ``run`` (see ``parse_options``)."""

    logger: logging.Logger
    job_logger: logging.Logger
    on_event: EventHandler | None = None
    resolve_state: Resolver | None = None
    resolve_credential: Resolver | None = None
    globals: dict[str, Any] = field(default_factory=dict)
    immutable_state: bool = False
    state_props_to_remove: tuple[str, ...] = DEFAULT_PROPS_TO_REMOVE
    timeout_ms: float | None = None
    state_limit_mb: float = DEFAULT_STATE_LIMIT_MB  # 0: no limit
    concurrency: int | None = None
    linker: dict[str, Any] = field(default_factory=dict)
    default_step_id: str = "job-1"
    profile: bool = False
    event_states: str = "copy"


def _check(ok: bool, name: str, expected: str, value: Any) -> None:
    if not ok:
        raise InputError(
            f"run option {name} must be {expected}, got {value!r}", details={"option": name}
        )


def _positive(name: str, value: Any, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    _check(
        isinstance(value, kinds) and not isinstance(value, bool) and value > 0,
        name,
        "a whole number above 0" if integer else "a number above 0",
        value,
    )


def parse_options(options: dict[str, Any]) -> RunOptions:
    """Check the keyword options of ``run``; unknown names are an ``InputError``."""
    known = set(RunOptions.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(
            f"unknown run option(s): {', '.join(unknown)}",
            fix=f"Known options: {', '.join(sorted(known))}",
        )
    for name in ("logger", "job_logger"):
        value = options.get(name)
        _check(value is None or isinstance(value, logging.Logger), name, "a logging.Logger", value)
    for name in ("on_event", "resolve_state", "resolve_credential"):
        value = options.get(name)
        _check(value is None or callable(value), name, "a callable", value)
    for name in ("immutable_state", "profile"):
        value = options.get(name, False)
        _check(isinstance(value, bool), name, "True or False", value)
    extra = options.get("globals")
    _check(extra is None or isinstance(extra, dict), "globals", "a dict of names", extra)
    clashes = sorted(set(extra or {}) & RESERVED_NAMES)
    if clashes:
        raise InputError(
            f"run option globals cannot replace the built-in name(s) job code relies on: "
            f"{', '.join(clashes)}",
            details={"option": "globals", "names": clashes},
            fix="Give these globals other names.",
        )
    props = options.get("state_props_to_remove")
    if props is None:
        props = DEFAULT_PROPS_TO_REMOVE
    _check(
        isinstance(props, list | tuple) and all(isinstance(p, str) for p in props),
        "state_props_to_remove",
        "a list of key names",
        props,
    )
    if options.get("timeout_ms") is not None:
        _positive("timeout_ms", options["timeout_ms"])
    limit = options.get("state_limit_mb")
    if limit is not None and limit != 0:  # 0 turns the size check off, as in OpenFn
        _positive("state_limit_mb", limit)
    if options.get("concurrency") is not None:
        _positive("concurrency", options["concurrency"], integer=True)
    linker = options.get("linker")
    _check(linker is None or isinstance(linker, dict), "linker", "a dict", linker)
    event_states = options.get("event_states", "copy")
    _check(event_states in _EVENT_STATES, "event_states", "'copy' or 'json'", event_states)
    step_id = options.get("default_step_id", "job-1")
    _check(isinstance(step_id, str) and bool(step_id), "default_step_id", "a string", step_id)
    return RunOptions(
        logger=options.get("logger") or silent_logger("statefn"),
        job_logger=options.get("job_logger") or silent_logger("statefn.job"),
        on_event=options.get("on_event"),
        resolve_state=options.get("resolve_state"),
        resolve_credential=options.get("resolve_credential"),
        globals=dict(extra or {}),
        immutable_state=options.get("immutable_state", False),
        state_props_to_remove=tuple(props),
        timeout_ms=options.get("timeout_ms"),
        state_limit_mb=DEFAULT_STATE_LIMIT_MB if limit is None else limit,
        concurrency=options.get("concurrency"),
        linker=dict(linker or {}),
        default_step_id=step_id,
        profile=options.get("profile", False),
        event_states=event_states,
    )
