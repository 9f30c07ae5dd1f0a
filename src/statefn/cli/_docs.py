"""``statefn docs``: an adaptor's operations with their signatures, or one's documentation.

The adaptor is loaded through the linker, as a run would load it, so ``--repo-dir`` and
``NAME=PATH`` work here too.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
from typing import Any

from ._exits import CliError, ExitCode
from ._logs import CliLogs
from ._plans import AdaptorSpec, linker_option
from ._repo import repo_dir

__all__ = ["docs_command", "signature_of"]


def docs_command(args: argparse.Namespace, logs: CliLogs) -> ExitCode:
    """Print the operations of ``args.adaptor``, or the documentation of ``args.operation``."""
    spec: AdaptorSpec = args.adaptor
    from statefn._errors import StatefnError
    from statefn._linker import Linker

    try:
        linker = Linker.from_option(linker_option([spec], repo_dir(args.repo_dir)))
        adaptor = linker.load(spec.reference)
    except StatefnError as error:
        raise CliError(error.message + (f"\n  fix: {error.fix}" if error.fix else "")) from None
    version = f"@{adaptor.version}" if adaptor.version else ""
    if args.operation is None:
        print(f"{adaptor.name}{version} ({adaptor.source}: {adaptor.root})")
        doc = inspect.getdoc(adaptor.module)
        if doc:
            print(f"\n{doc}\n")
        for name in sorted(adaptor.exports):
            print(f"  {name}{signature_of(adaptor.exports[name])}")
            summary = _summary(adaptor.exports[name])
            if summary:
                print(f"      {summary}")
        return ExitCode.OK
    value = adaptor.exports.get(args.operation)
    if value is None:
        close = difflib.get_close_matches(args.operation, adaptor.exports, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise CliError(f"{adaptor.name}{version} has no operation {args.operation!r}.{hint}")
    print(f"{adaptor.name}.{args.operation}{signature_of(value)}\n")
    print(inspect.getdoc(value) or "(no documentation)")
    return ExitCode.OK


def signature_of(value: Any) -> str:
    """``(arg, *, option=None)`` for a callable; empty for anything else."""
    if not callable(value):
        return ""
    try:
        return str(inspect.signature(value))
    except (TypeError, ValueError):
        return "(...)"


def _summary(value: Any) -> str:
    if not callable(value):
        return ""
    doc = inspect.getdoc(value) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ")
