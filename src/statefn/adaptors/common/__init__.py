"""The ``common`` adaptor: operations and helpers every job can use without importing.

Modelled on OpenFn's ``language-common``, with snake_case names.
"""

from __future__ import annotations

from ._operations import combine, each, fn, fn_if, log

__all__ = ["combine", "each", "fn", "fn_if", "log"]
