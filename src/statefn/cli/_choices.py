"""The values of the ``--log`` and ``--sanitize`` flags.

Kept apart from the modules that act on them (``_logs``), so that building the argument
parser, all that ``statefn --help`` needs, imports neither ``logging`` nor the runtime.
"""

from __future__ import annotations

__all__ = ["LOG_LEVEL_NAMES", "SANITIZE_MODES"]

LOG_LEVEL_NAMES = ("none", "error", "warn", "info", "debug")
SANITIZE_MODES = ("none", "obfuscate", "remove", "summarize")
