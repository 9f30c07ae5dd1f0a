"""The values of the ``--log`` and ``--sanitize`` flags, and of numeric flags.

Kept apart from the modules that act on them (``_logs``), so that building the argument
parser, all that ``statefn --help`` needs, imports neither ``logging`` nor the runtime.
"""

from __future__ import annotations

import argparse

__all__ = ["LOG_LEVEL_NAMES", "SANITIZE_MODES", "positive_int"]

LOG_LEVEL_NAMES = ("none", "error", "warn", "info", "debug")
SANITIZE_MODES = ("none", "obfuscate", "remove", "summarize")


def positive_int(text: str) -> int:
    """The ``type`` of a flag that takes a whole number above 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {value}")
    return value
