"""The job compiler: job source in, operations out.

Compiling (``compile_job``) parses the source, checks it against the sandbox policy and
compiles it to one code object, collecting every problem into one ``CompileError``. The
result is cached per process. Loading (``load_job``) runs the job's top-level code once,
in a fresh namespace, and returns its operations in source order:

- each top-level expression statement must produce an operation (a callable);
- a top-level ``def`` whose outermost decorator is an operation factory (``@fn``) or a
  call of one (``@fn_if(cond)``) becomes an operation at its place;
- every other top-level statement just runs.

Line numbers of the compiled code are those of the source, and its file name starts with
``<statefn-job``, which is how the step runner recognises job frames in tracebacks.
"""

from __future__ import annotations

import ast
import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

from ._errors import AdaptorImportError, CompileError, Diagnostic, SecurityError
from ._jobscope import JobGuards, JobLogger, LogSink, job_module
from ._lazy import S
from ._sandbox import (
    ALLOWED_MODULES,
    IMPORT,
    IMPORT_NAMES,
    compile_source,
    guarded_scope,
    parse,
    restrict,
    split_lines,
)
from .adaptor import is_operation_factory

__all__ = [
    "JOB_FILENAME_PREFIX",
    "JOB_MODULE",
    "CompiledJob",
    "JobEnvironment",
    "OperationInfo",
    "compile_globals",
    "compile_job",
    "load_globals",
    "load_job",
]

JOB_FILENAME_PREFIX = "<statefn-job"
# The ``__name__`` of job code, so the ``__module__`` of every class it defines.
JOB_MODULE = "statefn_job"

# The names the top-level rewrite calls (job code cannot name anything beginning with "_").
_OPERATION = "_sf_operation"
_DECORATOR = "_sf_decorator"
_DECORATOR_FACTORY = "_sf_decorator_factory"

_CACHE_SIZE = 256
# Numbers the file names of compiled sources, so that no two sources share one in a process
# (a digest of the source would import hashlib, and OpenSSL with it, on every run).
_numbers = itertools.count(1)

# Top-level expressions of these kinds make a value that is never callable.
_VALUE_DISPLAYS: dict[type[ast.expr], str] = {
    ast.JoinedStr: "a string",
    ast.List: "a list",
    ast.Tuple: "a tuple",
    ast.Set: "a set",
    ast.Dict: "a dict",
    ast.ListComp: "a list",
    ast.SetComp: "a set",
    ast.DictComp: "a dict",
    ast.GeneratorExp: "a generator",
}
# Operators over constants only (`1 + 1`) make a value that is never callable.
_OPERATORS = (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare)
# Built-ins that never return a callable (unless the job binds the name to something else).
_VALUE_BUILTINS = frozenset(
    {
        "abs", "all", "any", "bin", "bool", "chr", "dict", "divmod", "enumerate", "filter",
        "float", "format", "frozenset", "hash", "hex", "int", "isinstance", "issubclass",
        "len", "list", "map", "oct", "ord", "print", "range", "repr", "reversed", "round",
        "set", "sorted", "str", "sum", "tuple", "zip",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class OperationInfo:
    """One operation of a compiled job: its position in the list, its line and source."""

    index: int
    line: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "line": self.line, "source": self.source}


@dataclass(frozen=True, slots=True)
class CompiledJob:
    """Job source checked and compiled; ``load_job`` makes its operations."""

    source: str
    filename: str
    source_lines: list[str]
    operations: list[OperationInfo]
    adaptors: tuple[str, ...]
    code: CodeType = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "adaptors": list(self.adaptors),
            "operations": [operation.to_dict() for operation in self.operations],
        }


@dataclass
class JobEnvironment:
    """What a job sees when it loads.

    ``names``: adaptor exports, workflow globals and the user's globals (free names of the
    job). ``import_adaptor(name)``: what ``import name`` gives for a name that is not an
    allowed standard-library module; it raises ``AdaptorImportError``. ``console``: where
    ``print`` and ``console.*`` go. ``violations``: every ``SecurityError`` the sandbox
    raised in this job's code, kept even when job code caught it; the step runner should
    raise the first one after the step's operations ran.
    """

    names: dict[str, Any]
    import_adaptor: Callable[[str], Any]
    console: LogSink
    step_id: str
    violations: list[SecurityError] = field(default_factory=list)


def compile_job(source: str, adaptors: Sequence[str] = ()) -> CompiledJob:
    """Compile job source; ``CompileError`` lists every problem with line and column.

    ``adaptors`` are the step's adaptor specs (``"http@1.0.0"``); they are kept on the
    result, and an adaptor whose name is also a standard-library module's may be imported.
    """
    return _compile(source, tuple(adaptors), "job")


def compile_globals(source: str) -> CompiledJob:
    """Compile ``workflow.globals`` source: job rules, but top-level expressions just run."""
    return _compile(source, (), "job-globals")


def load_job(job: CompiledJob, env: JobEnvironment) -> list[Callable[..., Any]]:
    """Run the job's top-level code once in a fresh namespace; its operations, in order."""
    operations: list[Callable[..., Any]] = []

    def add(value: Any, line: int) -> Any:
        if not callable(value):
            raise CompileError([_not_an_operation(job, line, type(value).__name__)])
        if is_operation_factory(value):
            raise CompileError(
                [
                    _problem(
                        job,
                        line,
                        f"'{value.__name__}' makes operations: call it, e.g. {value.__name__}(...)",
                    )
                ]
            )
        operations.append(value)
        return value

    def decorator(candidate: Any, line: int) -> Any:
        if not is_operation_factory(candidate):
            return candidate
        return lambda func: add(candidate(func), line)

    def decorator_factory(candidate: Any, line: int) -> Any:
        if not is_operation_factory(candidate):
            return candidate

        def call(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:
            made = candidate(*args, **kwargs)
            return lambda func: add(made(func), line)

        return call

    namespace = _namespace(env)
    namespace.update(
        {_OPERATION: add, _DECORATOR: decorator, _DECORATOR_FACTORY: decorator_factory}
    )
    _run(job, namespace, env)
    return operations


def load_globals(job: CompiledJob, env: JobEnvironment) -> dict[str, Any]:
    """Run globals code once; the public names it defines (not beginning with ``_``)."""
    namespace = _namespace(env)
    given = dict(namespace)
    _run(job, namespace, env)
    return {
        name: value
        for name, value in namespace.items()
        if not name.startswith("_") and (name not in given or given[name] is not value)
    }


# -- compiling ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _compile(source: str, adaptors: tuple[str, ...], kind: str) -> CompiledJob:
    filename = f"<statefn-{kind}-{next(_numbers)}>"
    lines = split_lines(source)
    tree = parse(source, filename, "exec", lines)
    assert isinstance(tree, ast.Module)
    problems = restrict(tree, lines, frozenset(_adaptor_name(spec) for spec in adaptors))
    if kind == "job":
        problems += _non_operations(tree, lines)
    if problems:
        raise CompileError(problems)
    operations = _mark_operations(tree, lines) if kind == "job" else []
    code = compile_source(tree, filename, "exec", lines)
    return CompiledJob(source, filename, lines, operations, adaptors, code)


def _adaptor_name(spec: str) -> str:
    """``http@1.0.0`` -> ``http``; ``http=./path`` -> ``http``."""
    name = spec.split("=", 1)[0]
    return name.split("@", 1)[0] if not name.startswith("@") else name


def _non_operations(tree: ast.Module, lines: list[str]) -> list[Diagnostic]:
    """Top-level expressions that cannot make an operation, found without running them."""
    bound = _top_level_names(tree)
    problems = []
    for statement in tree.body:
        if not isinstance(statement, ast.Expr):
            continue
        what = _never_an_operation(statement.value, bound)
        if what is not None:
            text = lines[statement.lineno - 1]
            problems.append(
                Diagnostic(_not_an_operation_message(what), statement.lineno,
                           statement.col_offset + 1, text)
            )  # fmt: skip
    return problems


def _never_an_operation(value: ast.expr, bound: set[str]) -> str | None:
    """What ``value`` makes, when that can never be an operation; None when it may be one."""
    if isinstance(value, ast.Constant) and not isinstance(value.value, str):
        return f"a value of type '{type(value.value).__name__}'"
    display = _VALUE_DISPLAYS.get(type(value))
    if display is not None:
        return display
    if isinstance(value, _OPERATORS) and all(
        isinstance(node, (ast.Constant, *_OPERATORS))
        for node in ast.walk(value)
        if isinstance(node, ast.expr)
    ):
        return "a computed value"
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id in _VALUE_BUILTINS
        and value.func.id not in bound
    ):
        return f"the result of the built-in {value.func.id}()"
    return None


def _top_level_names(tree: ast.Module) -> set[str]:
    """The names the job's top-level code binds (they may shadow built-ins)."""
    names: set[str] = set()
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(statement.name)
        elif isinstance(statement, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in statement.names)
        else:
            names.update(
                node.id
                for node in ast.walk(statement)
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
            )
    return names


def _mark_operations(tree: ast.Module, lines: list[str]) -> list[OperationInfo]:
    """Rewrite the top-level operations to register themselves; list them in order."""
    operations: list[OperationInfo] = []
    for statement in tree.body:
        if isinstance(statement, ast.Expr):
            value = statement.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                continue  # a docstring or a comment-like string
            statement.value = _call(_OPERATION, value, statement.lineno)
            start: ast.stmt | ast.expr = statement
        elif (
            isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef)
            and statement.decorator_list
        ):
            outermost = statement.decorator_list[0]
            if isinstance(outermost, ast.Call):
                outermost.func = _call(_DECORATOR_FACTORY, outermost.func, outermost.lineno)
            else:
                statement.decorator_list[0] = _call(_DECORATOR, outermost, outermost.lineno)
            start = outermost
        else:
            continue
        operations.append(
            OperationInfo(len(operations), start.lineno, _segment(lines, start, statement))
        )
    return operations


def _call(name: str, value: ast.expr, line: int) -> ast.Call:
    # Positions are set directly: ``ast.copy_location`` costs more than the rest of this
    # pass on a job of a thousand operations.
    where: dict[str, Any] = {
        "lineno": value.lineno,
        "col_offset": value.col_offset,
        "end_lineno": value.end_lineno,
        "end_col_offset": value.end_col_offset,
    }
    func = ast.Name(id=name, ctx=ast.Load(), **where)
    return ast.Call(func=func, args=[value, ast.Constant(line, **where)], keywords=[], **where)


def _segment(lines: list[str], start: ast.stmt | ast.expr, end: ast.stmt) -> str:
    """The source text from ``start``'s line to the end of ``end`` (offsets: UTF-8 bytes).

    A top-level statement starts its line, except after ``;``: then the text starts at it.
    """
    first, last = start.lineno, end.end_lineno or end.lineno
    if first == last and lines[first - 1].isascii():  # the usual case: offsets are indexes
        begin = start.col_offset if isinstance(start, ast.stmt) else 0
        return lines[first - 1][begin : end.end_col_offset]
    chunk = [line.encode() for line in lines[first - 1 : last]]
    chunk[-1] = chunk[-1][: end.end_col_offset]
    if isinstance(start, ast.stmt):
        chunk[0] = chunk[0][start.col_offset :]
    return b"\n".join(chunk).decode(errors="replace")


# -- loading ----------------------------------------------------------------------------


def _namespace(env: JobEnvironment) -> dict[str, Any]:
    guards = JobGuards(env.violations)

    def import_module(name: str) -> Any:
        return job_module(name, guards) if name in ALLOWED_MODULES else env.import_adaptor(name)

    def import_names(module: str, names: tuple[str, ...]) -> tuple[Any, ...]:
        source = import_module(module)
        values = []
        for name in names:
            try:
                values.append(getattr(source, name))
            except AttributeError:
                raise AdaptorImportError(f"cannot import name '{name}' from '{module}'") from None
        return tuple(values)

    namespace = dict(env.names)
    namespace.update(guarded_scope(guards, env.console))
    namespace.update(
        {
            "__name__": JOB_MODULE,
            "S": S,
            "console": JobLogger(env.console),
            IMPORT: import_module,
            IMPORT_NAMES: import_names,
        }
    )
    return namespace


def _run(job: CompiledJob, namespace: dict[str, Any], env: JobEnvironment) -> None:
    exec(job.code, namespace)
    if env.violations:
        raise env.violations[0]


def _problem(job: CompiledJob, line: int, message: str) -> Diagnostic:
    text = job.source_lines[line - 1] if 0 < line <= len(job.source_lines) else ""
    column = len(text) - len(text.lstrip()) + 1
    return Diagnostic(message, line, column, text)


def _not_an_operation(job: CompiledJob, line: int, kind: str) -> Diagnostic:
    return _problem(job, line, _not_an_operation_message(f"a value of type '{kind}'"))


def _not_an_operation_message(what: str) -> str:
    return (
        f"this top-level expression makes {what}, not an operation: each top-level "
        "expression must make an operation, such as fn(lambda state: state); to compute a "
        "value once, assign it to a name; to print or log as the job runs, do it inside an "
        "operation"
    )
