"""Exit codes of the command line, and the error that carries one.

Commands raise ``CliError`` for problems the user can fix (a missing file, an unknown step);
``main`` prints its message, without a traceback, and exits with its code.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CliError", "ExitCode"]


class ExitCode(IntEnum):
    """What the process exit status means (contract section 7)."""

    OK = 0
    STEP_FAILED = 1
    USAGE = 2
    INVALID_INPUT = 3
    ABORTED = 4
    INTERRUPTED = 130


class CliError(Exception):
    """A problem with the user's input: printed as it is, then the process exits with ``code``."""

    def __init__(self, message: str, code: ExitCode = ExitCode.INVALID_INPUT) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
