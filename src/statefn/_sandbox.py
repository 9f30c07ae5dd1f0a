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
- the class of every ``match`` class pattern is looked up once, before the ``match``, through
  ``_sf_match_class``: positional patterns read the attributes the class lists in
  ``__match_args__``, names chosen at run time that must pass the same policy as ``x.name``;
- imports become calls of the loader's import functions, which hand out read-only views
  of the allowed standard-library modules and the adaptors the linker finds.

Edge conditions (``compile_expression``) are compiled under the same policy.

The guards those rewritten calls reach, the built-ins and the module views job code sees
while it runs live in ``_jobscope`` (and the format guard in ``_formatting``); this module
only decides and rewrites. What neither
stops (CPU or memory exhaustion, endless loops) is the job of the step timeout and of
process isolation; see ``docs/job-language.md``.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Callable
from typing import Any, cast

from ._errors import CompileError, Diagnostic
from ._formatting import (
    FORMAT_ATTRIBUTES,
    format_field_message,
    format_field_problem,
    format_target,
)
from ._jobscope import (
    JobGuards,
    LogSink,
    attribute_problem,
    job_builtins,
    module_view,
    unguarded_attribute_problem,
)
from ._linker import is_installed_adaptor

__all__ = [
    "ALLOWED_MODULES",
    "FORMAT_GUARD",
    "IMPORT",
    "IMPORT_NAMES",
    "MATCH_CLASS",
    "WRITE_GUARD",
    "RestrictedExpression",
    "compile_expression",
    "diagnostic",
    "guarded_scope",
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

# The names the rewritten tree calls. They begin with "_", so job code cannot name them.
WRITE_GUARD = "_sf_write"
FORMAT_GUARD = "_sf_format"
IMPORT = "_sf_import"
IMPORT_NAMES = "_sf_import_names"
MATCH_CLASS = "_sf_match_class"

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
# A class pattern's class is walked where it is hoisted to, before its ``match``.
_HOISTED: dict[type[ast.AST], frozenset[str]] = {ast.MatchClass: frozenset({"cls"})}


def _children_table() -> dict[type[ast.AST], tuple[str, ...]]:
    table: dict[type[ast.AST], tuple[str, ...]] = {}
    for node_name in _ALLOWED_NODES:
        node_type: type[ast.AST] = getattr(ast, node_name)
        skipped = _NOT_CHILDREN | _HOISTED.get(node_type, frozenset())
        fields = tuple(f for f in node_type._fields if f not in skipped)
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
_REWRITTEN_STATEMENTS = (*_IMPORTS, ast.Match)
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
    return cast(ast.AST, compile_source(source, filename, mode, lines, ast.PyCF_ONLY_AST))


def compile_source(
    source: str | ast.Module | ast.Expression,
    filename: str,
    mode: str,
    lines: list[str],
    flags: int = 0,
) -> Any:
    """CPython's ``compile``; whatever it refuses is a ``CompileError``, never a raw error.

    Pathological sources (a 200,000-term expression, 100,000 nested operators, a null
    byte) make the parser or the compiler raise ``RecursionError``, ``MemoryError`` or
    ``ValueError`` rather than ``SyntaxError``.
    """
    try:
        return compile(source, filename, mode, flags, dont_inherit=True)
    except SyntaxError as error:
        raise CompileError([syntax_diagnostic(error, lines)]) from None
    except (RecursionError, MemoryError, ValueError) as error:
        reason = str(error) if isinstance(error, ValueError) else "too deeply nested or too large"
        raise CompileError(
            [Diagnostic(f"the job cannot be compiled: {reason}", 1, 1, "")]
        ) from None


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
        self._hoisted = 0
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
            ast.MatchValue: self._match_value,
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

    def _check_attribute(
        self, node: Any, attr: str, policy: Callable[[str], str | None] = attribute_problem
    ) -> None:
        message = policy(attr)
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
        elif node.attr in FORMAT_ATTRIBUTES:
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
        # Keyword patterns read attributes: ``case C(__class__=x)`` is ``x = subject.__class__``,
        # with no place for the format guard between the read and the binding.
        for attr in node.kwd_attrs:
            self._check_attribute(node, attr, unguarded_attribute_problem)

    def _match_value(self, node: ast.MatchValue) -> None:
        # A value pattern is a dotted name that CPython looks up as it is: no guard fits.
        value = node.value
        while isinstance(value, ast.Attribute):
            if value.attr in FORMAT_ATTRIBUTES:
                self._check_attribute(value, value.attr, unguarded_attribute_problem)
            value = value.value

    # imports

    def _statements(self, statements: list[Any]) -> list[Any]:
        """Rewrite the imports and ``match`` statements of a statement list in place; the
        nodes the policy must walk (the job's own, not the rewrite's guard calls)."""
        if not any(type(statement) in _REWRITTEN_STATEMENTS for statement in statements):
            return statements
        rewritten: list[Any] = []
        to_walk: list[Any] = []
        for statement in statements:
            if type(statement) in _IMPORTS:
                rewritten.append(self._import(statement))
                continue
            if type(statement) is ast.Match:
                for hoisted in self._hoist_classes(statement):
                    rewritten.append(hoisted)
                    to_walk.append(hoisted.value.args[0])
            rewritten.append(statement)
            to_walk.append(statement)
        statements[:] = rewritten
        return to_walk

    def _hoist_classes(self, node: ast.Match) -> list[Any]:
        """``case C(p)`` -> ``_sf_class_N = _sf_match_class(C)`` before the ``match``, and
        ``case _sf_class_N(p)``: the guard sees the class before its patterns read anything."""
        assignments = []
        for case in node.cases:
            for pattern in ast.walk(case.pattern):
                if isinstance(pattern, ast.MatchClass):
                    name = f"_sf_class_{self._hoisted}"
                    self._hoisted += 1
                    value = _call(MATCH_CLASS, [pattern.cls], pattern.cls)
                    assignment = ast.Assign(targets=[ast.Name(name, ast.Store())], value=value)
                    assignments.append(ast.copy_location(assignment, node))
                    ast.copy_location(assignment.targets[0], node)
                    pattern.cls = ast.copy_location(ast.Name(name, ast.Load()), pattern.cls)
        return assignments

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
        scope: dict[str, Any] = dict(names)
        scope.update(guarded_scope(JobGuards([]), None))
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
    code = compile_source(cast(ast.Expression, tree), filename, "eval", lines)
    return RestrictedExpression(source, filename, code)


def guarded_scope(guards: JobGuards, sink: LogSink | None) -> dict[str, Any]:
    """The names the rewritten code calls, and the built-ins, for one job or condition."""
    return {
        "__builtins__": job_builtins(guards, sink),
        WRITE_GUARD: guards.write,
        FORMAT_GUARD: functools.partial(format_target, refuse=guards.refuse),
        MATCH_CLASS: guards.match_class,
    }
