"""Classifying what job code raised.

Which code raised decides between job and adaptor errors: the innermost traceback frame
that belongs to job code (job source, or an operation given as a Python callable) or to an
adaptor; frames of the standard library, third-party packages and statefn itself are
skipped. Job code errors then follow the table of the contract, section 4.

Classifying calls no method job code defined: an error class the job made (even one
deriving from a statefn error, which job code reaches as ``type(caught)``) is job code's
exception like any other, read with the built-in ``__str__``, and the fields of statefn's
own errors that job code could have filled are copied as exact JSON values.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

from ._compile import JOB_FILENAME_PREFIX, JOB_MODULE, CompiledJob
from ._errors import AdaptorError, JobError, JobRuntimeError, RuntimeCrash, StatefnError
from ._state import copy_state

__all__ = ["Classifier"]

_RUNTIME_ERRORS = (LookupError, ArithmeticError, TypeError, ValueError, AttributeError)
_CRASH_ERRORS = (NameError, SyntaxError, RecursionError, MemoryError)

_ADAPTORS_DIR = os.path.join(os.path.dirname(__file__), "adaptors", "")


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    """The standard library, installed packages and statefn itself. Found on the first
    error, not at import: ``sysconfig`` costs start-up time every run would pay."""
    import sysconfig

    paths = sysconfig.get_paths()
    dirs = {os.path.join(paths[key], "") for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return (*dirs, os.path.join(os.path.dirname(__file__), ""))


def _is_library_file(filename: str) -> bool:
    return filename.startswith(_library_dirs()) or filename.startswith("<frozen ")


def _chain(tb: TracebackType | None) -> list[TracebackType]:
    chain = []
    while tb is not None:
        chain.append(tb)
        tb = tb.tb_next
    return chain


def _column(tb: TracebackType) -> int:
    """The 1-based column of the instruction a traceback entry stopped at."""
    positions = list(tb.tb_frame.f_code.co_positions())
    index = tb.tb_lasti // 2
    start = positions[index][2] if 0 <= index < len(positions) else None
    return (start or 0) + 1


@dataclass(slots=True)
class Classifier:
    """Knows which frames are job code and which are adaptors, for one step."""

    step_id: str
    is_adaptor_file: Callable[[str], bool]
    job_sources: Mapping[str, Sequence[str]]
    job: CompiledJob | None = None

    def _origin(self, error: BaseException) -> tuple[str, dict[str, Any] | None]:
        """("job" or "adaptor", the position of the innermost job source line: the one
        that raised, or the one that called the adaptor that raised)."""
        origin: str | None = None
        for tb in reversed(_chain(error.__traceback__)):
            filename = tb.tb_frame.f_code.co_filename
            if filename.startswith(JOB_FILENAME_PREFIX):
                return origin or "job", self._position(filename, tb)
            if filename.startswith(_ADAPTORS_DIR) or self.is_adaptor_file(filename):
                origin = origin or "adaptor"
            elif not _is_library_file(filename):
                return origin or "job", None
        return origin or "job", None

    def _operation_position(self, index: int | None) -> dict[str, Any] | None:
        """Where job source made operation ``index`` (an operation the runtime called)."""
        if self.job is None or index is None or not 0 <= index < len(self.job.operations):
            return None
        line = self.job.operations[index].line
        src = self.job.source_lines[line - 1]
        return {"line": line, "column": len(src) - len(src.lstrip()) + 1, "src": src}

    def _position(self, filename: str, tb: TracebackType) -> dict[str, Any] | None:
        lines = self.job_sources.get(filename)
        line = tb.tb_lineno
        if lines is None or line is None or not 0 < line <= len(lines):
            return None
        return {"line": line, "column": _column(tb), "src": lines[line - 1]}

    def classify(self, error: BaseException, operation: int | None = None) -> StatefnError:
        """The ``StatefnError`` that stands for ``error``, raised by operation number
        ``operation`` (when known)."""
        origin, pos = self._origin(error)
        if origin == "adaptor" and pos is None:
            pos = self._operation_position(operation)
        if isinstance(error, StatefnError) and type(error).__module__ != JOB_MODULE:
            classified = error
            classified.details = _json_or_none(error.details)
            classified.pos = _json_or_none(error.pos)
        elif origin == "adaptor":
            details = _json_fields(error) or {}
            details.setdefault("message", _text(error))
            classified = AdaptorError(
                _text(error) or type(error).__name__,
                subtype=type(error).__name__,
                details=details,
            )
        else:
            classified = _job_error(error)
        if classified is not error:
            classified.__cause__ = error  # its traceback, for those who ask (--debug)
        if classified.step_id is None:
            classified.step_id = self.step_id
        if classified.pos is None and pos is not None:
            classified.pos = pos
        return classified


def _json_or_none(value: Any) -> Any:
    if value is None:
        return None
    try:
        return copy_state(value)
    except StatefnError:
        return None


def _text(error: BaseException) -> str:
    """``str(error)``, or its ``repr`` when its ``__str__`` itself raises.

    An error of a class the job defined is shown by the ``__str__`` of the nearest built-in
    exception class among its bases: a library base's own (a statefn error's reads
    ``message``, ``UserString``'s reads ``data``) would read what the job's class defines.
    """
    kind = type(error)
    try:
        if kind.__module__ == JOB_MODULE:
            builtin = next(c for c in kind.__mro__ if c.__module__ == "builtins")
            return str(cast(Callable[[BaseException], object], builtin.__str__)(error))
        return str(error)
    except Exception:
        try:
            return repr(error)
        except Exception:
            return ""


def _message(error: BaseException) -> str:
    text = _text(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _job_error(error: BaseException) -> StatefnError:
    """The table of contract section 4, for exceptions raised by job code."""
    name = type(error).__name__
    if isinstance(error, _CRASH_ERRORS):
        return RuntimeCrash(_message(error), subtype=name)
    if isinstance(error, _RUNTIME_ERRORS):
        return JobRuntimeError(_message(error), subtype=name)
    if isinstance(error, Exception):
        return JobError(_text(error) or name)
    # SystemExit, GeneratorExit and the like: job code never stops the host process.
    return JobError(_message(error))


def _json_fields(error: BaseException) -> dict[str, Any] | None:
    fields = {}
    for key, value in vars(error).items():
        if key.startswith("_"):
            continue
        try:
            fields[key] = copy_state(value, key)
        except StatefnError:
            continue
    return fields or None
