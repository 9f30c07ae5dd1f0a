"""The sandbox: what job code may do, checked once when it compiles.

The policy denies by default. ``restrict`` walks the syntax tree once: node types outside
an allow-list, names and attributes beginning with ``_``, the internals of frames and
generators, forbidden built-ins and imports are compile-time problems, collected as
``Diagnostic`` values. The same walk rewrites the few constructs that can only be judged
at run time, so that job code that uses nothing forbidden runs as plain Python:

- setting or deleting an attribute, ``x.a = v``, becomes ``_sf_write(x, "a").a = v``:
  job code may only change objects whose class it defined;
- reading ``format``/``format_map`` from anything but a string literal goes through
  ``_sf_format``, which checks the template when it is called (a literal is checked now);
- imports become calls of the loader's import functions, which hand out read-only views
  of the allowed standard-library modules and the adaptors the linker finds.

Edge conditions (``compile_expression``) are compiled under the same policy.

The guards those rewritten calls reach, the built-ins and the module views job code sees
while it runs live in ``_jobscope``; this module only decides and rewrites. What neither
stops (CPU or memory exhaustion, endless loops) is the job of the step timeout and of
process isolation; see ``docs/job-language.md``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from typing import Any, cast

from ._errors import CompileError, Diagnostic
from ._jobscope import (
    JobGuards,
    format_field_message,
    format_field_problem,
    format_target,
    job_builtins,
    module_view,
)
from ._linker import is_installed_adaptor

__all__ = [
    "ALLOWED_MODULES",
    "FORMAT_GUARD",
    "IMPORT",
    "IMPORT_NAMES",
    "WRITE_GUARD",
    "RestrictedExpression",
    "compile_expression",
    "diagnostic",
    "parse",
    "restrict",
    "split_lines",
    "syntax_diagnostic",
]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


ALLOWED_MODULES = _words(
    "base64 collections datetime decimal hashlib itertools json math random re statistics "
    "string time uuid zoneinfo"
)

FORBIDDEN_NAMES = _words(
    "eval exec compile open getattr setattr delattr globals locals vars dir breakpoint input "
    "help exit quit __import__"
)

# Generators, coroutines, async generators, frames, tracebacks and code objects.
INTERNAL_PREFIXES = ("gi_", "cr_", "ag_", "f_", "tb_", "co_")

# The names the rewritten tree calls. They begin with "_", so job code cannot name them.
WRITE_GUARD = "_sf_write"
FORMAT_GUARD = "_sf_format"
IMPORT = "_sf_import"
IMPORT_NAMES = "_sf_import_names"

_ALLOWED_NODES = _words(
    # statements
    "Module Expression FunctionDef AsyncFunctionDef ClassDef Return Delete Assign AugAssign "
    "AnnAssign For AsyncFor While If With AsyncWith Match Raise Try TryStar Assert Global "
    "Nonlocal Expr Pass Break Continue "
    # expressions
    "BoolOp NamedExpr BinOp UnaryOp Lambda IfExp Dict Set ListComp SetComp DictComp "
    "GeneratorExp Await Yield YieldFrom Compare Call FormattedValue JoinedStr Constant "
    "Attribute Subscript Starred Name List Tuple Slice "
    # parts
    "comprehension ExceptHandler arguments arg keyword withitem match_case MatchValue "
    "MatchSingleton MatchSequence MatchMapping MatchClass MatchStar MatchAs MatchOr"
)

# Fields that never hold nodes the policy must see (names are checked by the handlers;
# contexts and operators are harmless singletons).
_NOT_CHILDREN = frozenset(
    {"ctx", "op", "ops", "id", "attr", "name", "names", "asname", "module", "level", "arg"}
    | {"kwd_attrs", "rest", "type_comment", "kind", "conversion", "is_async"}
)


def _children_table() -> dict[type[ast.AST], tuple[str, ...]]:
    table: dict[type[ast.AST], tuple[str, ...]] = {}
    for node_name in _ALLOWED_NODES:
        node_type: type[ast.AST] = getattr(ast, node_name)
        fields = tuple(f for f in node_type._fields if f not in _NOT_CHILDREN)
        table[node_type] = () if node_type in (ast.Constant, ast.MatchSingleton) else fields
    return table


_CHILDREN = _children_table()

# Syntax newer than the allow-list, named as a reader would know it.
_SYNTAX_NAMES = {
    "TypeAlias": "a 'type' alias statement",
    "TypeVar": "a type parameter",
    "ParamSpec": "a type parameter",
    "TypeVarTuple": "a type parameter",
    "TemplateStr": "a template string",
    "Interpolation": "a template string",
}


def _syntax_name(node: ast.AST) -> str:
    name = type(node).__name__
    return _SYNTAX_NAMES.get(name, f"{name} syntax")


_IMPORTS = (ast.Import, ast.ImportFrom)
_STATEMENT_LISTS = frozenset({"body", "orelse", "finalbody"})


# -- positions and parsing -------------------------------------------------------------


def split_lines(source: str) -> list[str]:
    """The lines of ``source`` as Python counts them (``\\n``, ``\\r\\n`` and ``\\r``)."""
    return source.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def diagnostic(message: str, line: int, byte_offset: int, lines: list[str]) -> Diagnostic:
    """A problem at ``line`` and UTF-8 ``byte_offset`` (as ``ast`` counts), column 1-based."""
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    column = len(text.encode()[:byte_offset].decode(errors="ignore")) + 1
    return Diagnostic(message, line, column, text)


def parse(source: str, filename: str, mode: str, lines: list[str]) -> ast.AST:
    """Parse ``source``; a syntax error is a ``CompileError`` with its position."""
    try:
        tree: ast.AST = compile(source, filename, mode, ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as error:
        raise CompileError([syntax_diagnostic(error, lines)]) from None
    return tree


def syntax_diagnostic(error: SyntaxError, lines: list[str]) -> Diagnostic:
    line = error.lineno or 1
    text = lines[line - 1] if 0 < line <= len(lines) else (error.text or "").rstrip("\n")
    return Diagnostic(f"SyntaxError: {error.msg}", line, error.offset or 1, text)


# -- the policy ------------------------------------------------------------------------


def restrict(tree: ast.AST, lines: list[str], adaptors: frozenset[str]) -> list[Diagnostic]:
    """Check ``tree`` against the policy and rewrite its run-time guarded parts, in place.

    ``adaptors`` are the names of the step's adaptors: a standard-library module name that
    is not allowed may still be imported when an adaptor of that name is declared.
    """
    restrictor = _Restrictor(lines, adaptors)
    restrictor.walk(tree)
    return sorted(restrictor.problems, key=lambda problem: (problem.line, problem.column))


def _internal_attribute_message(attr: str) -> str | None:
    if attr.startswith("_"):
        return f"attribute '{attr}' is not allowed: attributes beginning with '_' are reserved"
    if attr.startswith(INTERNAL_PREFIXES):
        return (
            f"attribute '{attr}' is not allowed: the internals of generators, coroutines, "
            "frames, tracebacks and code objects are not reachable from job code"
        )
    return None


def _call(name: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
    """A call of one of the sandbox's functions, placed where ``like`` is."""
    func = ast.Name(id=name, ctx=ast.Load())
    call = ast.Call(func=func, args=args, keywords=[])
    for node in (func, call, *args):
        if not hasattr(node, "lineno"):
            ast.copy_location(node, like)
    return call


class _Restrictor:
    """One pass over a tree: checks every node, rewrites guarded ones."""

    def __init__(self, lines: list[str], adaptors: frozenset[str]) -> None:
        self.problems: list[Diagnostic] = []
        self._lines = lines
        self._adaptors = adaptors
        self._handlers: dict[type[ast.AST], Callable[[Any], None]] = {
            ast.Name: self._name,
            ast.Attribute: self._attribute,
            ast.FunctionDef: self._function,
            ast.AsyncFunctionDef: self._function,
            ast.ClassDef: self._class,
            ast.arg: self._arg,
            ast.keyword: self._keyword,
            ast.ExceptHandler: self._except_handler,
            ast.Global: self._declaration,
            ast.Nonlocal: self._declaration,
            ast.MatchAs: self._match_capture,
            ast.MatchStar: self._match_capture,
            ast.MatchMapping: self._match_mapping,
            ast.MatchClass: self._match_class,
        }

    def walk(self, root: ast.AST) -> None:
        # An explicit stack and a per-type table of child fields: this pass must cost a
        # fraction of CPython's own compile of the same tree.
        stack: list[Any] = [root]
        pop, push = stack.pop, stack.append
        children, handlers = _CHILDREN, self._handlers
        while stack:
            node = pop()
            if node is None:
                continue
            kind = type(node)
            fields = children.get(kind)
            if fields is None:
                self._report(node, f"{_syntax_name(node)} is not allowed in job code")
                continue
            for field in fields:
                value = getattr(node, field)
                if type(value) is list:
                    stack.extend(self._statements(value) if field in _STATEMENT_LISTS else value)
                elif value is not None:
                    push(value)
            # Children are on the stack already: a handler may wrap them in guard calls
            # that the walk must not see as job code.
            handler = handlers.get(kind)
            if handler is not None:
                handler(node)

    def _report(self, node: Any, message: str) -> None:
        line = getattr(node, "lineno", 1)
        self.problems.append(diagnostic(message, line, getattr(node, "col_offset", 0), self._lines))

    def _check_name(self, node: Any, name: str) -> None:
        if name.startswith("_") and name != "_":
            self._report(
                node, f"name '{name}' is not allowed: names beginning with '_' are reserved"
            )
        elif name in FORBIDDEN_NAMES:
            self._report(node, f"'{name}' is not allowed in job code")

    def _check_attribute(self, node: Any, attr: str) -> None:
        message = _internal_attribute_message(attr)
        if message is None:
            return
        if isinstance(node, ast.Attribute) and node.end_lineno and node.end_col_offset:
            # Point at the attribute's name, not at the start of ``a.b.c.__class__``.
            offset = node.end_col_offset - len(attr.encode())
            self.problems.append(diagnostic(message, node.end_lineno, offset, self._lines))
        else:
            self._report(node, message)

    # handlers, one per node type that carries a name

    def _name(self, node: ast.Name) -> None:
        self._check_name(node, node.id)

    def _attribute(self, node: ast.Attribute) -> None:
        self._check_attribute(node, node.attr)
        if not isinstance(node.ctx, ast.Load):
            node.value = _call(WRITE_GUARD, [node.value, ast.Constant(node.attr)], node.value)
        elif node.attr in ("format", "format_map"):
            receiver = node.value
            if isinstance(receiver, ast.Constant) and isinstance(receiver.value, str):
                field = format_field_problem(receiver.value)
                if field is not None:
                    self._report(node, format_field_message(field))
            else:
                node.value = _call(FORMAT_GUARD, [receiver], receiver)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._check_name(node, node.name)

    def _class(self, node: ast.ClassDef) -> None:
        self._check_name(node, node.name)
        if node.keywords:
            self._report(node, "class keywords (such as metaclass=) are not allowed in job code")

    def _arg(self, node: ast.arg) -> None:
        self._check_name(node, node.arg)

    def _keyword(self, node: ast.keyword) -> None:
        if node.arg is not None:
            self._check_name(node, node.arg)

    def _except_handler(self, node: ast.ExceptHandler) -> None:
        if node.name is not None:
            self._check_name(node, node.name)

    def _declaration(self, node: ast.Global | ast.Nonlocal) -> None:
        for name in node.names:
            self._check_name(node, name)

    def _match_capture(self, node: ast.MatchAs | ast.MatchStar) -> None:
        if node.name is not None:
            self._check_name(node, node.name)

    def _match_mapping(self, node: ast.MatchMapping) -> None:
        if node.rest is not None:
            self._check_name(node, node.rest)

    def _match_class(self, node: ast.MatchClass) -> None:
        # Keyword patterns read attributes: ``case C(__class__=x)`` is ``x = subject.__class__``.
        for attr in node.kwd_attrs:
            self._check_attribute(node, attr)

    # imports

    def _statements(self, statements: list[Any]) -> list[Any]:
        """Rewrite the imports of a statement list in place; the other statements, to walk."""
        if not any(type(statement) in _IMPORTS for statement in statements):
            return statements
        original = []
        for index, statement in enumerate(statements):
            if type(statement) in _IMPORTS:
                statements[index] = self._import(statement)
            else:
                original.append(statement)
        return original

    def _import(self, node: ast.Import | ast.ImportFrom) -> ast.stmt:
        """``import a as b`` -> ``b = _sf_import("a")``; ``from a import x`` -> ``x, = ...``."""
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                self._report(node, "relative imports are not allowed in job code")
            self._check_module(node, module)
            for alias in node.names:
                if alias.name == "*":
                    self._report(node, "'import *' is not allowed: import the names you need")
                    continue
                self._check_name(node, alias.name)
                if alias.asname is not None:
                    self._check_name(node, alias.asname)
                if module in ALLOWED_MODULES and alias.name not in vars(module_view(module)):
                    self._report(node, f"cannot import name '{alias.name}' from '{module}'")
            names = ast.Tuple([ast.Constant(alias.name) for alias in node.names], ast.Load())
            targets = [alias.asname or alias.name for alias in node.names]
            value: ast.expr = _call(IMPORT_NAMES, [ast.Constant(module), names], node)
        else:
            targets, calls = [], list[ast.expr]()
            for alias in node.names:
                self._check_module(node, alias.name)
                if alias.asname is not None:
                    self._check_name(node, alias.asname)
                targets.append(alias.asname or alias.name)
                calls.append(_call(IMPORT, [ast.Constant(alias.name)], node))
            value = ast.Tuple(calls, ast.Load())
        target = ast.Tuple([ast.Name(t, ast.Store()) for t in targets], ast.Store())
        assign = ast.Assign(targets=[target], value=value)
        for part in ast.walk(assign):
            ast.copy_location(part, node)
        return assign

    def _check_module(self, node: Any, module: str) -> None:
        if "." in module:
            self._report(
                node, f"import of '{module}' is not allowed: submodules cannot be imported"
            )
            return
        self._check_name(node, module)
        if (
            module in sys.stdlib_module_names
            and module not in ALLOWED_MODULES
            and module not in self._adaptors
            and not is_installed_adaptor(module)
        ):
            allowed = ", ".join(sorted(ALLOWED_MODULES))
            self._report(
                node,
                f"import of '{module}' is not allowed: job code can import adaptors and "
                f"these standard-library modules: {allowed}",
            )


# -- edge conditions ---------------------------------------------------------------------


class RestrictedExpression:
    """A compiled edge condition: one Python expression under the job language's rules."""

    __slots__ = ("code", "filename", "source")

    def __init__(self, source: str, filename: str, code: Any) -> None:
        self.source = source
        self.filename = filename
        self.code = code

    def evaluate(self, names: dict[str, Any]) -> Any:
        """The expression's value, with the safe built-ins and ``names`` in scope."""
        guards = JobGuards([])
        scope: dict[str, Any] = dict(names)
        scope["__builtins__"] = job_builtins(guards, None)
        scope[WRITE_GUARD] = guards.write
        scope[FORMAT_GUARD] = format_target
        return eval(self.code, scope)

    def __repr__(self) -> str:
        return f"RestrictedExpression({self.source!r})"


def compile_expression(source: str, filename: str) -> RestrictedExpression:
    """Compile an edge condition; ``CompileError`` lists every problem."""
    text = source.strip()
    lines = split_lines(text)
    tree = parse(text, filename, "eval", lines)
    problems = restrict(tree, lines, frozenset())
    if problems:
        raise CompileError(problems)
    try:
        code = compile(cast(ast.Expression, tree), filename, "eval", dont_inherit=True)
    except SyntaxError as error:
        raise CompileError([syntax_diagnostic(error, lines)]) from None
    return RestrictedExpression(source, filename, code)
