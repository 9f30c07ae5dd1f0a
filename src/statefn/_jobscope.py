"""What job code meets at run time: guards, built-ins, the console, standard-library views.

The sandbox (``_sandbox``) checks job source once, when it compiles, and rewrites the few
constructs it cannot judge there into calls of the guards defined here. This module holds
everything a loaded job (or an edge condition) touches while it runs:

- ``attribute_problem``: the one policy for attribute names, whether job code writes them
  (``x.name``, ``case C(name=p)``) or a class chooses them at run time (``__match_args__``);
- ``JobGuards``: setting attributes only on objects whose class the job defined, class
  patterns whose positional attributes pass the policy, ``type()`` with one argument only
  and never of a class (no metaclass reaches job code), and the record of every refusal,
  so a caught ``SecurityError`` still fails the step;
- ``job_builtins``: the safe built-ins, with ``print`` sent to a ``LogSink``; ``JobLogger``
  is the ``console`` object;
- ``module_view``: read-only views of the allowed standard-library modules, without their
  submodules or the attributes that reach outside the job; ``job_module`` gives each
  import its own copy of the mutable objects a module shares (``decimal``'s contexts,
  ``random``'s generator).

It does not decide what source is allowed, which modules may be imported or how guards are
wired into the compiled code: that is the static policy in ``_sandbox``. The guard of
``str.format`` templates is in ``_formatting``.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import weakref
from collections.abc import Callable, Iterable
from types import MappingProxyType, ModuleType
from typing import Any, NoReturn, Protocol

from ._console import LogLevel
from ._errors import SecurityError
from ._formatting import FORMAT_ATTRIBUTES

__all__ = [
    "BUILTIN_NAMES",
    "JobGuards",
    "JobLogger",
    "ListSink",
    "LogSink",
    "ModuleView",
    "attribute_problem",
    "job_builtins",
    "job_module",
    "module_view",
    "unguarded_attribute_problem",
]


# -- the attribute policy ----------------------------------------------------------------

# Generators, coroutines, async generators, frames, tracebacks and code objects.
INTERNAL_PREFIXES = ("gi_", "cr_", "ag_", "f_", "tb_", "co_")

# Climbing to a class's bases hands out Enum (whose functional API makes classes from a dict
# of names, dunders included) and the standard ABCs; registering a virtual subclass changes
# what ``isinstance`` answers for every run in the process.
HIERARCHY_ATTRIBUTES = frozenset({"mro", "register"})


def attribute_problem(attr: str) -> str | None:
    """Why job code may not read attribute ``attr`` by name, or None when it may."""
    if attr.startswith("_"):
        return f"attribute '{attr}' is not allowed: attributes beginning with '_' are reserved"
    if attr.startswith(INTERNAL_PREFIXES):
        return (
            f"attribute '{attr}' is not allowed: the internals of generators, coroutines, "
            "frames, tracebacks and code objects are not reachable from job code"
        )
    if attr in HIERARCHY_ATTRIBUTES:
        return (
            f"attribute '{attr}' is not allowed: job code may not climb or change class hierarchies"
        )
    return None


def unguarded_attribute_problem(attr: str) -> str | None:
    """``attribute_problem``, where no guard can stand between the read and its use."""
    if attr in FORMAT_ATTRIBUTES:
        return (
            f"attribute '{attr}' is not allowed here: str.{attr} can only be reached as "
            f"x.{attr}, where its template is checked"
        )
    return attribute_problem(attr)


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
        for base in bases:
            if isinstance(base, type) and issubclass(base, type):
                self.refuse("a class deriving from a metaclass is not allowed in job code")
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
        """``type`` for job code: the one-argument form, of anything but a class."""
        if more:
            self.refuse("type() with three arguments is not allowed in job code")
        if isinstance(value, type):
            self.refuse(
                "type() of a class is not allowed in job code: a metaclass makes classes "
                "from a dict of names chosen at run time"
            )
        return type(value)

    def match_class(self, cls: Any) -> Any:
        """``cls`` of a class pattern, once the attributes its positional patterns would
        read (the names in ``cls.__match_args__``, chosen at run time) pass the policy."""
        names = getattr(cls, "__match_args__", ())
        if type(names) is tuple:
            for name in names:
                if isinstance(name, str):
                    problem = unguarded_attribute_problem(str.__str__(name))
                    if problem is not None:
                        self.refuse(problem)
        return cls


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

# Every built-in name job code meets (with the ``type`` and ``print`` of job_builtins).
BUILTIN_NAMES = frozenset({*_BASE_BUILTINS, "type", "print"})


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
# decimal context of a shared thread), the file system (the time zone search path and the
# directories under it), string.Formatter, whose fields read attributes, Enum, whose
# functional API makes classes from a dict of names, and datetime's C API capsule.
_HIDDEN_ATTRIBUTES: dict[str, frozenset[str]] = {
    # base64's command line: reads files named in sys.argv or stdin, writes to stdout.
    "base64": frozenset({"main", "test"}),
    "datetime": frozenset({"datetime_CAPI"}),
    "decimal": frozenset({"setcontext"}),
    "string": frozenset({"Formatter"}),
    "time": frozenset({"sleep", "tzset", "clock_settime", "clock_settime_ns"}),
    "uuid": frozenset({"getnode", "uuid1", "Enum"}),
    "zoneinfo": frozenset({"reset_tzpath", "available_timezones", "TZPATH"}),
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


# The position of ``flags`` among the arguments of re's functions (and of its class
# ``Scanner``) that compile a pattern.
_RE_FLAGS_POSITION = {
    "Scanner": 1,
    "compile": 1,
    "template": 1,
    "search": 2,
    "match": 2,
    "fullmatch": 2,
    "findall": 2,
    "finditer": 2,
    "split": 3,
    "sub": 4,
    "subn": 4,
}


def _re_without_debug(guards: JobGuards) -> dict[str, Any]:
    """re's functions that compile a pattern, refusing ``re.DEBUG``: with it, compiling
    prints the parsed pattern to the process's standard output (the command line's JSON)."""
    import re

    def refusing(function: Callable[..., Any], position: int) -> Callable[..., Any]:
        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            flags = args[position] if len(args) > position else kwargs.get("flags", 0)
            if isinstance(flags, int) and flags & re.DEBUG:
                guards.refuse(
                    "re.DEBUG is not allowed in job code: it prints to the process's "
                    "standard output"
                )
            return function(*args, **kwargs)

        return call

    return {
        name: refusing(getattr(re, name), position)
        for name, position in _RE_FLAGS_POSITION.items()
        if hasattr(re, name)
    }


def _own_decimal_contexts(guards: JobGuards) -> dict[str, Any]:
    import decimal

    names = ("DefaultContext", "BasicContext", "ExtendedContext")
    return {name: getattr(decimal, name).copy() for name in names}


def _own_random_generator(guards: JobGuards) -> dict[str, Any]:
    import random

    shared, own = random.random.__self__, random.Random()  # type: ignore[attr-defined]
    return {
        name: getattr(own, name)
        for name, value in vars(random).items()
        if getattr(value, "__self__", None) is shared and not name.startswith("_")
    }


# What one job's import of a module replaces in the shared view: the module-level objects
# that hold state and that job code can change without setting an attribute (a context's
# traps, a generator's seed), and functions guarded with the job's guards.
_OWN_OBJECTS: dict[str, Callable[[JobGuards], dict[str, Any]]] = {
    "decimal": _own_decimal_contexts,
    "random": _own_random_generator,
    "re": _re_without_debug,
}


def job_module(name: str, guards: JobGuards) -> ModuleView:
    """What ``import name`` gives one job: the shared view, or a copy of it with the
    module's stateful objects and guarded functions its own."""
    view = module_view(name)
    own = _OWN_OBJECTS.get(name)
    if own is None:
        return view
    attributes = {attr: value for attr, value in vars(view).items() if attr != "_name"}
    attributes.update(own(guards))
    return ModuleView(name, attributes)
