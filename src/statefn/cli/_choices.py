"""The commands and their summaries, the values of the ``--log`` and ``--sanitize`` flags,
and of numeric flags.

Kept apart from the modules that act on them (``_logs``, each command's), so that
``statefn --help``, which needs only the summaries, imports neither ``logging`` nor the
runtime nor any command's module.
"""

from __future__ import annotations

import argparse

__all__ = ["COMMAND_SUMMARIES", "LOG_LEVEL_NAMES", "SANITIZE_MODES", "positive_int"]

# In the order ``statefn --help`` lists them.
COMMAND_SUMMARIES = {
    "run": "run a workflow (.json/.yaml) or a job (.py)",
    "compile": "print a job's operations, or what is wrong with it",
    "validate": "check a workflow and compile its jobs",
    "repo": "install, list and remove adaptors",
    "docs": "list an adaptor's operations, or show one's documentation",
    "runs": "list and inspect the runs recorded in a ledger",
    "serve": "serve a folder of workflows: web UI, JSON API, webhooks, cron",
    "worker": "run a distributed worker: take runs from a broker, record them in a ledger",
    "submit": "submit a run to distributed workers; print its id",
    "test": "run a small built-in workflow to check the installation",
}

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
