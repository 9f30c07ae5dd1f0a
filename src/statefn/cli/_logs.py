"""Where the command line's output goes: log lines on stderr, as text or JSON lines.

Three loggers, named by component: ``cli`` (this command line: progress, files used),
``runtime`` (the runtime's own messages) and ``job`` (what job code prints or logs). Every
line passes through a masker first, as a second guard behind the runtime's own masking.
State objects appear in logs only as ``--sanitize`` allows.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson

from statefn._masking import Masker

from ._choices import LOG_LEVEL_NAMES

__all__ = ["LOG_LEVELS", "CliLogs", "describe_state"]

# The --log names, in their order, with the logging levels they stand for.
LOG_LEVELS: dict[str, int] = dict(
    zip(
        LOG_LEVEL_NAMES,
        (logging.CRITICAL + 10, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG),
        strict=True,
    )
)
SanitizeMode = Literal["none", "obfuscate", "remove", "summarize"]

_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}
_COLOURS = {"debug": "\x1b[2m", "warn": "\x1b[33m", "error": "\x1b[31m"}
_RESET = "\x1b[0m"


def _level_name(record: logging.LogRecord) -> str:
    return _LEVEL_NAMES.get(record.levelno, record.levelname.lower())


class _MaskingFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.maskers: list[Masker] = []

    def text(self, text: str) -> str:
        for masker in self.maskers:
            text = masker.text(text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.maskers:
            record.msg = self.text(record.getMessage())
            record.args = None
        return True


class _SanitizingFilter(logging.Filter):
    """Rewrites a job's log line from the values it printed, objects shaped by ``mode``."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def filter(self, record: logging.LogRecord) -> bool:
        values = getattr(record, "job_values", ())
        if any(isinstance(value, dict | list) for value in values):
            shown = (
                describe_state(value, self.mode) if isinstance(value, dict | list) else str(value)
                for value in values
            )
            record.msg = " ".join(text for text in shown if text is not None)
            record.args = None
        return True


def _not_a_step_error(record: logging.LogRecord) -> bool:
    return not (record.levelno >= logging.ERROR and getattr(record, "job_id", None))


class _TextFormatter(logging.Formatter):
    """``[component step] level: message``; the level only for warnings and errors."""

    def __init__(self, interactive: bool, colour: bool) -> None:
        super().__init__()
        self._interactive = interactive
        self._colour = colour

    def format(self, record: logging.LogRecord) -> str:
        if self._interactive and getattr(record, "progress", False):
            # Progress marks (▸ ✔ ✘) speak for themselves on a terminal.
            return record.getMessage()
        level = _level_name(record)
        job_id = getattr(record, "job_id", None)
        tag = f"[{record.name} {job_id}]" if job_id else f"[{record.name}]"
        message = record.getMessage()
        if level in ("warn", "error"):
            message = f"{level}: {message}"
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        if self._colour:
            colour = _COLOURS.get(level, "")
            return f"\x1b[2m{tag}{_RESET} {colour}{message}{_RESET if colour else ''}"
        return f"{tag} {message}"


class _JsonFormatter(logging.Formatter):
    """One JSON object a line: ``level``, ``name``, ``message``, ``time``, ``job_id``."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        line: dict[str, Any] = {
            "level": _level_name(record),
            "name": record.name,
            "message": message,
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        }
        job_id = getattr(record, "job_id", None)
        if job_id:
            line["job_id"] = job_id
        return orjson.dumps(line).decode()


class CliLogs:
    """The ``cli``, ``runtime`` and ``job`` loggers of one command, writing to ``stream``."""

    def __init__(
        self,
        stream: TextIO,
        level: str = "info",
        *,
        json_lines: bool = False,
        tracebacks: bool = False,
    ) -> None:
        self.stream = stream
        self.json_lines = json_lines
        self.interactive = not json_lines and stream.isatty()
        # https://no-color.org: a NO_COLOR that is set and not empty turns colour off.
        self.colour = self.interactive and not os.environ.get("NO_COLOR")
        handler = logging.StreamHandler(stream)
        formatter = _TextFormatter(self.interactive, self.colour)
        handler.setFormatter(_JsonFormatter() if json_lines else formatter)
        self._masking = _MaskingFilter()
        handler.addFilter(self._masking)
        self.level = LOG_LEVELS[level]
        self.cli = self._logger("cli", handler)
        self.runtime = self._logger("runtime", handler)
        if self.level > logging.DEBUG:
            # The runtime logs each step's start and end, and a step's error, which the
            # progress lines and the final diagnostics already show: those are kept for
            # --log debug. Its other warnings and errors are shown as they are.
            self.runtime.setLevel(max(self.level, logging.WARNING))
            self.runtime.addFilter(_not_a_step_error)
        if tracebacks:
            # The runtime logs the traceback behind a step's error at debug level.
            shown = self.runtime.level
            self.runtime.setLevel(logging.DEBUG)
            self.runtime.addFilter(lambda record: record.levelno >= shown or bool(record.exc_info))
        self.job = self._logger("job", handler)

    def _logger(self, name: str, handler: logging.Handler) -> logging.Logger:
        # Loggers made directly are outside logging's global tree: nothing else sees them,
        # and their names are exactly the component names the JSON lines carry.
        logger = logging.Logger(name, self.level)
        logger.addHandler(handler)
        logger.propagate = False
        return logger

    def sanitize(self, mode: str) -> None:
        """Show the objects (dicts, lists) that jobs print or log as ``--sanitize mode`` says."""
        if mode != "none":
            self.job.addFilter(_SanitizingFilter(mode))

    def paint(self, text: str, colour: str) -> str:
        """``text`` in ``colour`` (an ANSI escape code) when colour is on."""
        return f"{colour}{text}{_RESET}" if self.colour else text

    def mask(self, masker: Masker) -> None:
        """Mask ``masker``'s secrets in every line from now on."""
        if masker:
            self._masking.maskers.append(masker)

    def report(self, text: str, level: int = logging.ERROR) -> None:
        """Write a multi-line report (a diagnostic): as it is in text mode, so that its
        ``PATH:LINE:COLUMN`` starts a line, or as one log line of the ``cli`` logger."""
        if level >= self.level:
            self._write_report(text, level)

    def fatal(self, text: str) -> None:
        """Write the report of an error that ends the command, whatever ``--log`` says: it is
        the command's answer, not log noise."""
        self._write_report(text, logging.ERROR)

    def notice(self, text: str) -> None:
        """Log ``text`` at info, or, when ``--log`` is above info, write it all the same: a
        line the command owes the user (the id of a run it records)."""
        if self.cli.isEnabledFor(logging.INFO):
            self.cli.info(text)
        else:
            self._write_report(text, logging.INFO)

    def _write_report(self, text: str, level: int) -> None:
        if self.json_lines:
            # Handled, not logged: past the logger's level, which --log none puts above all.
            self.cli.handle(self.cli.makeRecord(self.cli.name, level, "", 0, text, (), None))
        else:
            self.stream.write(self._masking.text(text) + "\n")
            self.stream.flush()


def describe_state(state: Any, mode: str) -> str | None:
    """How a state object appears in a log line under ``--sanitize mode`` (None: not at all)."""
    if mode == "remove":
        return None
    if mode == "obfuscate":
        return "[array]" if isinstance(state, list) else "[object]"
    if mode == "summarize":
        if isinstance(state, dict):
            return f"(object with keys {', '.join(map(str, state)) or 'none'})"
        if isinstance(state, list):
            return f"(array with {len(state)} items)"
    return orjson.dumps(state, option=orjson.OPT_NON_STR_KEYS).decode()
