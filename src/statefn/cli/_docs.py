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
from ._plans import AdaptorSpec, check_adaptor_paths, linker_option
from ._repo import repo_dir

__all__ = ["docs_command", "signature_of"]

_WIDTH = 88


def docs_command(args: argparse.Namespace, logs: CliLogs) -> ExitCode:
    """Print the operations of ``args.adaptor``, or the documentation of ``args.operation``."""
    spec: AdaptorSpec = args.adaptor
    from statefn._errors import StatefnError
    from statefn._linker import Linker

    check_adaptor_paths([spec])
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
        from statefn.adaptor import is_operation_factory

        # Classes (such as a response body type) are documented by the operations that use
        # them; constants are not called. Operations first, then helper functions.
        functions = {
            name: value
            for name, value in adaptor.exports.items()
            if callable(value) and not inspect.isclass(value)
        }
        operations = sorted(name for name in functions if is_operation_factory(functions[name]))
        helpers = sorted(name for name in functions if name not in operations)
        for heading, names in (("operations", operations), ("helpers", helpers)):
            if names:
                print(f"{heading}:")
            for name in names:
                print(_wrapped(f"  {name}", functions[name]))
                summary = _summary(functions[name])
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


def _wrapped(head: str, value: Any) -> str:
    """``head`` and ``value``'s signature, broken between parameters to fit the width."""
    signature = signature_of(value)
    if len(head) + len(signature) <= _WIDTH or not signature.startswith("("):
        return head + signature
    parameters, returns = _parts(signature)
    indent = " " * (len(head) + 1)
    lines, line = [], head + "("
    for index, parameter in enumerate(parameters):
        piece = parameter + ("," if index < len(parameters) - 1 else ")" + returns)
        if len(line) + len(piece) > _WIDTH and not line.endswith("("):
            lines.append(line.rstrip())
            line = indent
        line += piece + " "
    lines.append(line.rstrip())
    return "\n".join(lines)


def _parts(signature: str) -> tuple[list[str], str]:
    """``(a, b: dict[str, int]) -> X`` -> ``(["a", "b: dict[str, int]"], " -> X")``."""
    parameters, depth, start = [], 0, 1
    for index, char in enumerate(signature):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                parameters.append(signature[start:index].strip())
                return [p for p in parameters if p], signature[index + 1 :]
        elif char == "," and depth == 1:
            parameters.append(signature[start:index].strip())
            start = index + 1
    return [signature], ""


def signature_of(value: Any) -> str:
    """``(path, *, query=None) -> Operation`` for a callable; empty for anything else.

    Annotations are shown as written (adaptors often use postponed annotations, which
    ``inspect`` would quote), and ``Any`` ones are left out: they say nothing.
    """
    if not callable(value):
        return ""
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):
        return "(...)"
    parameters = [
        parameter.replace(annotation=_plain(parameter.annotation))
        for parameter in signature.parameters.values()
    ]
    returns = _plain(signature.return_annotation)
    return str(signature.replace(parameters=parameters, return_annotation=returns))


class _Written(str):
    """An annotation's text, shown without quotes."""

    def __repr__(self) -> str:
        return str(self)


def _plain(annotation: Any) -> Any:
    if annotation is inspect.Parameter.empty or annotation in ("Any", Any):
        return inspect.Parameter.empty
    return _Written(annotation) if isinstance(annotation, str) else annotation


def _summary(value: Any) -> str:
    if not callable(value):
        return ""
    doc = inspect.getdoc(value) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ")
