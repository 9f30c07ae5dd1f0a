"""Hints the runtime cannot give, because they depend on what is installed here.

A job that uses an adaptor's operation without listing the adaptor (``get(...)`` in a job
run without ``-a http``) fails with a ``NameError``; the command line looks for an
installed adaptor that exports the name and says to add it.
"""

from __future__ import annotations

import re
from typing import Any

from statefn._errors import StatefnError

__all__ = ["add_adaptor_hint"]

_UNDEFINED = r"NameError: name '(?P<name>\w+)' is not defined"


def add_adaptor_hint(error: StatefnError, linker: dict[str, Any]) -> None:
    """Give a ``NameError`` without a fix the adaptor that exports its name, if one does."""
    found = re.fullmatch(_UNDEFINED, error.message)
    if found is None or error.fix is not None:
        return
    adaptor = _adaptor_exporting(found["name"], linker)
    if adaptor is not None:
        error.fix = (
            f"{found['name']} is an operation of the adaptor {adaptor}: add the adaptor to "
            f'the step (-a {adaptor} for a job, "adaptors": ["{adaptor}"] in a plan)'
        )


def _adaptor_exporting(name: str, linker: dict[str, Any]) -> str | None:
    """The first installed adaptor (by name) whose exports include ``name``."""
    from importlib.metadata import entry_points  # costs ~20 ms: only on this error

    from statefn._linker import SHIPPED_ADAPTORS, Linker
    from statefn._repo import ENTRY_POINT_GROUP, list_installed

    candidates: set[str] = {*SHIPPED_ADAPTORS, *linker.get("modules", {})}
    candidates.update(entry.name for entry in entry_points(group=ENTRY_POINT_GROUP))
    candidates.update(entry.name for entry in list_installed(linker.get("repo")))
    loader = Linker.from_option(linker)
    for candidate in sorted(candidates - {"common"}):
        try:
            exports = loader.load(candidate).exports
        except StatefnError:
            continue
        if name in exports:
            return candidate
    return None
