"""What job code meets at run time: guards, built-ins, the console, standard-library views.

The sandbox (``_sandbox``) checks job source once, when it compiles, and rewrites the few
constructs it cannot judge there into calls of the guards defined here. This module holds
everything a loaded job (or an edge condition) touches while it runs:

- ``JobGuards``: setting attributes only on objects whose class the job defined, ``type()``
  with one argument only, and the record of every refusal, so a caught ``SecurityError``
  still fails the step;
- ``format_target``: ``str.format``/``format_map`` templates may not read attributes;
- ``job_builtins``: the safe built-ins, with ``print`` sent to a ``LogSink``; ``JobLogger``
  is the ``console`` object;
- ``module_view``: read-only views of the allowed standard-library modules, without their
  submodules or the attributes that reach outside the job.

It does not decide what source is allowed, which modules may be imported or how guards are
wired into the compiled code: that is the static policy in ``_sandbox``.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import string
import weakref
from collections import UserString
from collections.abc import Callable, Iterable
from types import MappingProxyType, ModuleType
from typing import Any, NoReturn, Protocol

from ._console import LogLevel
from ._errors import SecurityError

__all__ = [
    "JobGuards",
    "JobLogger",
    "ListSink",
    "LogSink",
    "ModuleView",
    "format_field_message",
    "format_field_problem",
    "format_target",
    "job_builtins",
    "module_view",
]


# -- guards ----------------------------------------------------------------------------


class JobGuards:
    """The run-time guards of one loaded job: which classes it defined, what it tried.

    Every ``SecurityError`` raised is also kept in ``violations``, so that job code that
    catches it cannot hide it: the loader (and the step runner) raise the first one after
    the job's code returns.
    """

    def __init__(self, violations: list[SecurityError]) -> None:
        self.violations = violations
        self._classes: weakref.WeakSet[type] = weakref.WeakSet()

    def refuse(self, message: str) -> NoReturn:
        error = SecurityError(message)
        self.violations.append(error)
        raise error

    def build_class(self, func: Callable[..., Any], name: str, *bases: Any, **kw: Any) -> Any:
        """``__build_class__`` of job code: remembers the classes the job defines."""
        cls = builtins.__build_class__(func, name, *bases, **kw)
        self._classes.add(cls)
        return cls

    def write(self, target: Any, attr: str) -> Any:
        """``target`` when job code may set ``attr`` on it (it defined the class)."""
        if type(target) in self._classes or (isinstance(target, type) and target in self._classes):
            return target
        self.refuse(
            f"setting attribute '{attr}' of {_describe(target)} is not allowed: job code may "
            "only set attributes of objects whose class it defines"
        )

    def type_of(self, value: object, *more: object) -> type:
        """``type`` for job code: the one-argument form only."""
        if more:
            self.refuse("type() with three arguments is not allowed in job code")
        return type(value)


def _describe(value: Any) -> str:
    if isinstance(value, ModuleView):
        return f"module '{value._name}'"
    if isinstance(value, ModuleType):
        return f"module '{value.__name__}'"
    if isinstance(value, type):
        return f"type '{value.__name__}'"
    if callable(value) and hasattr(value, "__name__"):
        return f"function '{value.__name__}'"
    return f"a '{type(value).__name__}' object"


# -- format strings --------------------------------------------------------------------

_FORMATTER = string.Formatter()


def format_field_message(field: str) -> str:
    """The problem with ``field``, a format field that reads an attribute."""
    return (
        f"format field '{{{field}}}' is not allowed: fields of str.format and "
        "str.format_map may not read attributes"
    )


def _reads_attribute(field: str) -> bool:
    # A field is ``arg_name ("." attribute | "[" key "]")*``; a dot inside brackets is
    # part of a key, which is an item lookup like any subscript in job code.
    in_key = False
    for char in field:
        if char == "[":
            in_key = True
        elif char == "]":
            in_key = False
        elif char == "." and not in_key:
            return True
    return False


def format_field_problem(template: str) -> str | None:
    """The first field of a ``str.format`` template that reads an attribute, else None."""
    try:
        parts = list(_FORMATTER.parse(template))
    except ValueError:
        return None  # str.format raises the same error when called
    for _literal, field, spec, _conversion in parts:
        if field is not None and _reads_attribute(field):
            return field
        if spec and "{" in spec:
            nested = format_field_problem(spec)
            if nested is not None:
                return nested
    return None


def _check_template(template: object) -> None:
    text = template.data if isinstance(template, UserString) else template
    if isinstance(text, str):
        field = format_field_problem(text)
        if field is not None:
            raise SecurityError(format_field_message(field))


class _FormatGuard:
    """Stands for a string while its ``format``/``format_map`` is looked up."""

    __slots__ = ("_subject", "_template")

    def __init__(self, subject: Any, template: object) -> None:
        self._subject = subject
        self._template = template

    def format(self, *args: Any, **kwargs: Any) -> Any:
        _check_template(self._template)
        return self._subject.format(*args, **kwargs)

    def format_map(self, mapping: Any) -> Any:
        _check_template(self._template)
        return self._subject.format_map(mapping)


class _UnboundFormatGuard:
    """Stands for ``str`` (or a subclass) while ``str.format`` is looked up on it."""

    __slots__ = ("_subject",)

    def __init__(self, subject: Any) -> None:
        self._subject = subject

    def format(self, template: object, /, *args: Any, **kwargs: Any) -> Any:
        _check_template(template)
        return self._subject.format(template, *args, **kwargs)

    def format_map(self, template: object, mapping: Any) -> Any:
        _check_template(template)
        return self._subject.format_map(template, mapping)


def format_target(value: Any) -> Any:
    """What ``value.format`` is looked up on: a guard when ``value`` is a string or ``str``."""
    # ``super().format`` is ``str.format`` bound to ``super().__self__``.
    subject = getattr(value, "__self__", None) if isinstance(value, super) else value
    if isinstance(subject, type):
        if issubclass(subject, str | UserString):
            return _UnboundFormatGuard(value)
        return value
    if isinstance(subject, str | UserString):
        return _FormatGuard(value, subject)
    return value


# -- built-ins and the console ---------------------------------------------------------


class LogSink(Protocol):
    """Where job output goes: a ``JobConsole`` at run time, a list in tests."""

    def log(self, level: LogLevel, message: str, values: tuple[object, ...] = ()) -> None: ...


class ListSink:
    """A ``LogSink`` that keeps ``(level, message)`` lines in memory."""

    def __init__(self) -> None:
        self.lines: list[tuple[LogLevel, str]] = []

    def log(self, level: LogLevel, message: str, values: tuple[object, ...] = ()) -> None:
        self.lines.append((level, message))


def _text(args: Iterable[object], sep: str | None) -> str:
    return (" " if sep is None else sep).join(map(str, args))


class JobLogger:
    """The ``console`` of job code: ``console.log(...)``, ``console.warn(...)``, ..."""

    __slots__ = ("_sink",)

    def __init__(self, sink: LogSink) -> None:
        self._sink = sink

    def log(self, *args: object, sep: str | None = " ") -> None:
        """Log at level ``info`` (like OpenFn's ``console.log``)."""
        self._sink.log("info", _text(args, sep), args)

    def debug(self, *args: object, sep: str | None = " ") -> None:
        self._sink.log("debug", _text(args, sep), args)

    def info(self, *args: object, sep: str | None = " ") -> None:
        self._sink.log("info", _text(args, sep), args)

    def warn(self, *args: object, sep: str | None = " ") -> None:
        self._sink.log("warn", _text(args, sep), args)

    warning = warn

    def error(self, *args: object, sep: str | None = " ") -> None:
        self._sink.log("error", _text(args, sep), args)

    def __repr__(self) -> str:
        return "<job console>"


# The built-ins job code may use, besides the exception classes (added below).
_SAFE_BUILTINS = (
    "abs aiter all anext any ascii bin bool bytearray bytes callable chr classmethod complex "
    "dict divmod enumerate filter float format frozenset hash hex id int isinstance "
    "issubclass iter len list map max min next object oct ord pow property range repr "
    "reversed round set slice sorted staticmethod str sum super tuple zip "
    "Ellipsis NotImplemented"
)


def _base_builtins() -> dict[str, Any]:
    names = {name: getattr(builtins, name) for name in _SAFE_BUILTINS.split()}
    for name, value in vars(builtins).items():
        # Exception classes, except the one that means "the user pressed Ctrl-C".
        if (
            isinstance(value, type)
            and issubclass(value, BaseException)
            and value is not KeyboardInterrupt
        ):
            names[name] = value
    return names


_BASE_BUILTINS = MappingProxyType(_base_builtins())


def job_builtins(guards: JobGuards, sink: LogSink | None) -> dict[str, Any]:
    """The built-ins of job code; ``print`` goes to ``sink`` (absent when None)."""
    names = dict(_BASE_BUILTINS)
    names["type"] = guards.type_of
    names["__build_class__"] = guards.build_class
    if sink is not None:
        names["print"] = _printer(sink)
    return names


def _printer(sink: LogSink) -> Callable[..., None]:
    def print(
        *args: object, sep: str | None = " ", end: str | None = "\n", flush: bool = False
    ) -> None:
        """Write a line to the job log (level ``info``)."""
        text = _text(args, sep) + ("\n" if end is None else end)
        sink.log("info", text.removesuffix("\n"), args)

    print.__qualname__ = "print"  # error messages say "print() got ...", as Python's do
    return print


# -- standard-library views ----------------------------------------------------------------

# Attributes of allowed modules that reach outside the job: processes (uuid's node lookup
# may run system tools), the clock's sleep (a job must not block its thread on purpose),
# process- and system-wide settings (time zone search path, TZ, the system clock, the
# decimal context of a shared thread) and string.Formatter, whose fields read attributes.
_HIDDEN_ATTRIBUTES: dict[str, frozenset[str]] = {
    "decimal": frozenset({"setcontext"}),
    "string": frozenset({"Formatter"}),
    "time": frozenset({"sleep", "tzset", "clock_settime", "clock_settime_ns"}),
    "uuid": frozenset({"getnode", "uuid1"}),
    "zoneinfo": frozenset({"reset_tzpath"}),
}


class ModuleView:
    """A read-only view of an allowed standard-library module, without its submodules."""

    _name: str

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        vars(self).update(attributes)
        vars(self)["_name"] = name

    def __getattr__(self, name: str) -> NoReturn:
        # Only called for names the view lacks: submodules, hidden and unknown attributes.
        removed = name in _HIDDEN_ATTRIBUTES.get(self._name, ())
        reason = ": the sandbox removes it from jobs" if removed else ""
        raise AttributeError(f"module '{self._name}' has no attribute '{name}'{reason}")

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise SecurityError(f"setting attribute '{name}' of module '{self._name}' is not allowed")

    def __delattr__(self, name: str) -> NoReturn:
        raise SecurityError(f"deleting attribute '{name}' of module '{self._name}' is not allowed")

    def __dir__(self) -> list[str]:
        return sorted(name for name in vars(self) if not name.startswith("_"))

    def __repr__(self) -> str:
        return f"<module '{self._name}' (job view)>"


def _frozen(value: Any) -> Any:
    # Module-level containers are shared by every job in the process.
    if isinstance(value, set):
        return frozenset(value)
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return MappingProxyType(dict(value))
    return value


@functools.cache
def module_view(name: str) -> ModuleView:
    """The view job code gets for ``import name`` (the sandbox says which names)."""
    module = importlib.import_module(name)
    hidden = _HIDDEN_ATTRIBUTES.get(name, frozenset())
    attributes = {
        attr: _frozen(value)
        for attr, value in vars(module).items()
        if not attr.startswith("_") and attr not in hidden and not isinstance(value, ModuleType)
    }
    return ModuleView(name, attributes)
