"""The keyword options of ``run`` and ``run_async``, checked once before a run starts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._errors import InputError
from ._events import EventHandler

__all__ = ["RunOptions", "parse_options", "silent_logger"]

Resolver = Callable[[str], Any]

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
    logger: logging.Logger
    job_logger: logging.Logger
    on_event: EventHandler | None = None
    resolve_state: Resolver | None = None
    resolve_credential: Resolver | None = None
    globals: dict[str, Any] = field(default_factory=dict)
    immutable_state: bool = False
    state_props_to_remove: tuple[str, ...] = ("configuration",)
    timeout_ms: float | None = None
    state_limit_mb: float = 500
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
    props = options.get("state_props_to_remove", ("configuration",))
    _check(
        isinstance(props, list | tuple) and all(isinstance(p, str) for p in props),
        "state_props_to_remove",
        "a list of key names",
        props,
    )
    for name in ("timeout_ms", "state_limit_mb"):
        if options.get(name) is not None:
            _positive(name, options[name])
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
        state_limit_mb=options.get("state_limit_mb") or 500,
        concurrency=options.get("concurrency"),
        linker=dict(linker or {}),
        default_step_id=step_id,
        profile=options.get("profile", False),
        event_states=event_states,
    )
