"""The escape corpus: hostile jobs, one per row, each with its exact outcome.

Each job is compiled and, when it compiles, loaded and run on ``{"data": {}}``. The
outcome is one of: ``Refused`` (a ``CompileError``; its first problem's message),
``Forbidden`` (a ``SecurityError`` at run time), ``Fails`` (an ordinary exception: the
thing is simply not there) or ``Allowed`` (the final state: harmless look-alikes of
hostile code must keep working).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from statefn import AdaptorImportError, CompileError, SecurityError
from statefn._compile import JobEnvironment, compile_job, load_job
from statefn._jobscope import ListSink
from statefn.adaptor import operation


@dataclass(frozen=True)
class Refused:
    message: str


@dataclass(frozen=True)
class Forbidden:
    message: str


@dataclass(frozen=True)
class Fails:
    error: type[BaseException]
    message: str


@dataclass(frozen=True)
class Allowed:
    state: dict[str, Any]


@operation
def fn(func: Any) -> Any:
    return func


def _no_adaptor(name: str) -> Any:
    raise AdaptorImportError(f"adaptor '{name}' not found")


def outcome_of(source: str) -> Refused | Forbidden | Fails | Allowed:
    try:
        job = compile_job(source)
    except CompileError as error:
        return Refused(error.problems[0].message)
    env = JobEnvironment(
        names={"fn": fn}, import_adaptor=_no_adaptor, console=ListSink(), step_id="job"
    )
    state: dict[str, Any] = {"data": {}}
    try:
        for op in load_job(job, env):
            state = op(state)
    except SecurityError as error:
        return Forbidden(error.message)
    except Exception as error:
        return Fails(type(error), str(error))
    return Allowed(state)


def underscore_name(name: str) -> Refused:
    return Refused(f"name '{name}' is not allowed: names beginning with '_' are reserved")


def underscore_attribute(attr: str) -> Refused:
    return Refused(f"attribute '{attr}' is not allowed: attributes beginning with '_' are reserved")


def internals(attr: str) -> Refused:
    return Refused(
        f"attribute '{attr}' is not allowed: the internals of generators, coroutines, "
        "frames, tracebacks and code objects are not reachable from job code"
    )


def forbidden_builtin(name: str) -> Refused:
    return Refused(f"'{name}' is not allowed in job code")


def format_field(field: str) -> str:
    return (
        f"format field '{{{field}}}' is not allowed: fields of str.format and "
        "str.format_map may not read attributes"
    )


def attribute_write(attr: str, owner: str) -> Forbidden:
    return Forbidden(
        f"setting attribute '{attr}' of {owner} is not allowed: job code may only set "
        "attributes of objects whose class it defines"
    )


def stdlib_import(module: str) -> Refused:
    return Refused(
        f"import of '{module}' is not allowed: job code can import adaptors and these "
        "standard-library modules: base64, collections, datetime, decimal, hashlib, "
        "itertools, json, math, random, re, statistics, string, time, uuid, zoneinfo"
    )


CORPUS: list[tuple[str, str, Refused | Forbidden | Fails | Allowed]] = [
    # names and attributes beginning with "_"
    ("builtins-name", "x = __builtins__", underscore_name("__builtins__")),
    ("class-attribute", "fn(lambda s: s.__class__)", underscore_attribute("__class__")),
    (
        "subclasses-climb",
        "().__class__.__bases__[0].__subclasses__()",
        underscore_attribute("__class__"),
    ),
    ("private-assignment", "_secret = 1", underscore_name("_secret")),
    ("private-def", "def _helper():\n    pass", underscore_name("_helper")),
    ("private-argument", "fn(lambda _s: _s)", underscore_name("_s")),
    ("bound-self", "x = print.__self__", underscore_attribute("__self__")),
    ("function-globals", "fn(lambda s: fn.__globals__)", underscore_attribute("__globals__")),
    ("lambda-code", "x = (lambda: 0).__code__", underscore_attribute("__code__")),
    ("instance-dict", "fn(lambda s: s.__dict__)", underscore_attribute("__dict__")),
    ("reduce-protocol", "fn(lambda s: s.__reduce_ex__(2))", underscore_attribute("__reduce_ex__")),
    ("keyword-argument", "x = dict(__class__=1)", underscore_name("__class__")),
    (
        "except-name",
        "try:\n    pass\nexcept Exception as _e:\n    pass",
        underscore_name("_e"),
    ),
    ("global-declaration", "def f():\n    global _g\n    _g = 1", underscore_name("_g")),
    ("walrus-target", "x = (_y := 1)", underscore_name("_y")),
    ("delete-name", "x = 1\ndel _x", underscore_name("_x")),
    ("debug-flag", "x = __debug__", underscore_name("__debug__")),
    ("match-capture", "match 1:\n    case _x:\n        pass", underscore_name("_x")),
    ("match-rest", "match {}:\n    case {**_rest}:\n        pass", underscore_name("_rest")),
    (
        "bare-underscore-allowed",
        "_ = 1\nfn(lambda s: {**s, 'u': _})",
        Allowed({"data": {}, "u": 1}),
    ),
    # str.format and format_map fields
    ("format-literal", "x = '{0.__class__}'.format(1)", Refused(format_field("0.__class__"))),
    ("format-named", "x = '{x.y}'.format(x=1)", Refused(format_field("x.y"))),
    (
        "format-map-literal",
        "x = '{x.__class__}'.format_map({'x': 1})",
        Refused(format_field("x.__class__")),
    ),
    ("format-nested-spec", "x = '{0:{1.real}}'.format(1, 2)", Refused(format_field("1.real"))),
    (
        "format-dynamic-template",
        "t = '{0.__class__}'\nfn(lambda s: t.format(s))",
        Forbidden(format_field("0.__class__")),
    ),
    (
        "format-unbound-method",
        "fn(lambda s: str.format('{0.__globals__}', fn))",
        Forbidden(format_field("0.__globals__")),
    ),
    (
        "format-map-as-value",
        "f = str.format_map\nfn(lambda s: f('{x.real}', {'x': 1}))",
        Forbidden(format_field("x.real")),
    ),
    (
        "format-user-string",
        "import collections\nfn(lambda s: collections.UserString('{0.real}').format(1))",
        Forbidden(format_field("0.real")),
    ),
    (
        "format-through-super",
        "class T(str):\n    def go(self):\n        return super().format(1)\n"
        "fn(lambda s: T('{0.real}').go())",
        Forbidden(format_field("0.real")),
    ),
    (
        "format-of-type-of-string",
        "fn(lambda s: type('').format('{0.real}', 1))",
        Forbidden(format_field("0.real")),
    ),
    (
        "format-index-allowed",
        "fn(lambda s: {**s, 'x': '{0[k]}-{1}'.format({'k': 'v'}, 2)})",
        Allowed({"data": {}, "x": "v-2"}),
    ),
    ("fstring-field-checked", "x = f'{fn.__globals__}'", underscore_attribute("__globals__")),
    (
        "fstring-conversion-and-spec-allowed",
        "w = 6\nfn(lambda s: {**s, 'x': f'{s[\"data\"]!r:>{w}}'})",
        Allowed({"data": {}, "x": "    {}"}),
    ),
    # generators, coroutines, frames, tracebacks, code objects
    ("generator-frame", "g = (i for i in [1])\nx = g.gi_frame", internals("gi_frame")),
    ("generator-code", "g = (i for i in [1])\nx = g.gi_code", internals("gi_code")),
    ("frame-globals", "fn(lambda s: s['frame'].f_globals)", internals("f_globals")),
    ("frame-back", "fn(lambda s: s['frame'].f_back)", internals("f_back")),
    ("coroutine-frame", "async def c():\n    pass\nx = c().cr_frame", internals("cr_frame")),
    ("async-generator-frame", "fn(lambda s: s['agen'].ag_frame)", internals("ag_frame")),
    ("traceback-frame", "fn(lambda s: s['tb'].tb_frame)", internals("tb_frame")),
    ("code-bytes", "fn(lambda s: s['code'].co_code)", internals("co_code")),
    # exception objects
    (
        "exception-traceback",
        "try:\n    1 / 0\nexcept Exception as e:\n    t = e.__traceback__",
        underscore_attribute("__traceback__"),
    ),
    (
        "exception-context",
        "try:\n    1 / 0\nexcept Exception as e:\n    t = e.__context__",
        underscore_attribute("__context__"),
    ),
    (
        "exception-args-allowed",
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    a = e.args\n"
        "fn(lambda s: {**s, 'a': list(a)})",
        Allowed({"data": {}, "a": ["division by zero"]}),
    ),
    # type() climbing
    ("type-mro", "x = type(1).__mro__", underscore_attribute("__mro__")),
    (
        "type-mro-method-then-subclasses",
        "x = type(1).mro()[-1].__subclasses__()",
        underscore_attribute("__subclasses__"),
    ),
    (
        "type-three-arguments",
        "X = type('X', (), {'y': 1})",
        Forbidden("type() with three arguments is not allowed in job code"),
    ),
    ("object-subclasses", "x = object.__subclasses__()", underscore_attribute("__subclasses__")),
    (
        "type-one-argument-allowed",
        "fn(lambda s: {**s, 't': type(s['data']) is dict})",
        Allowed({"data": {}, "t": True}),
    ),
    # forbidden built-ins (each by name)
    *[
        (f"builtin-{name}", f"fn(lambda s: {name})", forbidden_builtin(name))
        for name in [
            "eval",
            "exec",
            "compile",
            "open",
            "getattr",
            "setattr",
            "delattr",
            "globals",
            "locals",
            "vars",
            "dir",
            "breakpoint",
            "input",
            "help",
            "exit",
            "quit",
        ]
    ],
    ("builtin-import", "os = __import__('os')", underscore_name("__import__")),
    ("builtin-shadowed-by-assignment", "open = 1", forbidden_builtin("open")),
    (
        "builtin-hasattr-missing",
        "fn(lambda s: hasattr(s, 'x'))",
        Fails(NameError, "name 'hasattr' is not defined"),
    ),
    # imports
    ("import-os", "import os", stdlib_import("os")),
    ("import-sys", "import sys", stdlib_import("sys")),
    ("import-importlib", "import importlib", stdlib_import("importlib")),
    ("import-builtins", "import builtins", stdlib_import("builtins")),
    ("import-subprocess-as", "import subprocess as sp", stdlib_import("subprocess")),
    ("from-os-import", "from os import path", stdlib_import("os")),
    (
        "from-importlib-import",
        "from importlib import import_module",
        stdlib_import("importlib"),
    ),
    ("import-private-module", "import _thread", underscore_name("_thread")),
    (
        "from-json-import-submodule",
        "from json import decoder",
        Refused("cannot import name 'decoder' from 'json'"),
    ),
    (
        "import-submodule",
        "import json.decoder",
        Refused("import of 'json.decoder' is not allowed: submodules cannot be imported"),
    ),
    ("relative-import", "from . import x", Refused("relative imports are not allowed in job code")),
    (
        "import-star",
        "from json import *",
        Refused("'import *' is not allowed: import the names you need"),
    ),
    (
        "import-private-name",
        "from json import _default_encoder",
        underscore_name("_default_encoder"),
    ),
    (
        "submodule-attribute-json",
        "import json\nfn(lambda s: json.decoder)",
        Fails(AttributeError, "module 'json' has no attribute 'decoder'"),
    ),
    (
        "submodule-attribute-uuid-os",
        "import uuid\nfn(lambda s: uuid.os)",
        Fails(AttributeError, "module 'uuid' has no attribute 'os'"),
    ),
    (
        "submodule-attribute-re-enum",
        "import re\nfn(lambda s: re.enum)",
        Fails(AttributeError, "module 're' has no attribute 'enum'"),
    ),
    (
        "string-formatter-hidden",
        "import string\nfn(lambda s: string.Formatter)",
        Fails(
            AttributeError,
            "module 'string' has no attribute 'Formatter': the sandbox removes it from jobs",
        ),
    ),
    (
        "time-sleep-hidden",
        "from time import sleep",
        Refused("cannot import name 'sleep' from 'time'"),
    ),
    (
        "unknown-module-goes-to-linker",
        "import not_an_adaptor",
        Fails(AdaptorImportError, "adaptor 'not_an_adaptor' not found"),
    ),
    # Unicode look-alikes: Python folds identifiers with NFKC before the policy sees them
    ("fullwidth-eval", "x = \uff45val('1')", forbidden_builtin("eval")),
    ("script-e-eval", "x = \u212fval('1')", forbidden_builtin("eval")),
    ("bold-exec", "x = \U0001d41e\U0001d431\U0001d41e\U0001d41c('1')", forbidden_builtin("exec")),
    ("fullwidth-open", "x = \uff4fpen('/etc/passwd')", forbidden_builtin("open")),
    ("fullwidth-frame-attribute", "fn(lambda s: s.\uff46_globals)", internals("f_globals")),
    # names assembled from strings have nothing to reach them with
    (
        "assembled-name-getattr",
        "name = '__cla' + 'ss__'\nfn(lambda s: getattr(s, name))",
        forbidden_builtin("getattr"),
    ),
    (
        "assembled-name-vars",
        "fn(lambda s: vars(s)['__cla' + 'ss__'])",
        forbidden_builtin("vars"),
    ),
    # writing attributes of modules, adaptor objects and built-in types
    (
        "module-attribute-write",
        "import json\njson.loads = print",
        attribute_write("loads", "module 'json'"),
    ),
    (
        "module-attribute-delete",
        "import json\ndel json.dumps",
        attribute_write("dumps", "module 'json'"),
    ),
    (
        "module-attribute-augmented",
        "import math\nmath.pi += 1",
        attribute_write("pi", "module 'math'"),
    ),
    (
        "stdlib-class-attribute-write",
        "from json import JSONDecoder\nJSONDecoder.decode = None",
        attribute_write("decode", "type 'JSONDecoder'"),
    ),
    ("adaptor-function-write", "fn.flag = 1", attribute_write("flag", "function 'fn'")),
    ("lazy-state-write", "S.data = 1", attribute_write("data", "a 'StatePath' object")),
    ("console-write", "console.log = print", attribute_write("log", "a 'JobLogger' object")),
    ("builtin-type-write", "int.x = 1", attribute_write("x", "type 'int'")),
    ("for-target-write", "for fn.x in [1]:\n    pass", attribute_write("x", "function 'fn'")),
    (
        "write-refused-even-when-caught",
        "try:\n    int.x = 1\nexcept Exception:\n    pass",
        attribute_write("x", "type 'int'"),
    ),
    (
        "job-class-write-allowed",
        "class Box:\n    pass\nb = Box()\nb.x = 1\nBox.y = 2\n"
        "fn(lambda s: {**s, 'x': b.x, 'y': b.y})",
        Allowed({"data": {}, "x": 1, "y": 2}),
    ),
    # match class patterns read attributes
    (
        "match-class-keyword-dunder",
        "match 1:\n    case int(__class__=c):\n        pass",
        underscore_attribute("__class__"),
    ),
    (
        "match-class-keyword-internals",
        "match 1:\n    case object(gi_frame=g):\n        pass",
        internals("gi_frame"),
    ),
    (
        "match-class-keyword-allowed",
        "match 3:\n    case int(real=r):\n        x = r\nfn(lambda s: {**s, 'r': x})",
        Allowed({"data": {}, "r": 3}),
    ),
    # lambda defaults
    ("lambda-default-builtins", "fn(lambda s, b=__builtins__: s)", underscore_name("__builtins__")),
    (
        "lambda-default-bound-self",
        "fn(lambda s, f=print: f.__self__)",
        underscore_attribute("__self__"),
    ),
    # decorators
    ("decorator-import", "@__import__\ndef x():\n    pass", underscore_name("__import__")),
    (
        "decorator-bound-self",
        "@print.__self__.exec\ndef x():\n    pass",
        underscore_attribute("__self__"),
    ),
    # classes
    (
        "class-dunder-method",
        "class A:\n    def __init__(self):\n        pass",
        underscore_name("__init__"),
    ),
    ("class-slots", "class A:\n    __slots__ = ()", underscore_name("__slots__")),
    (
        "class-getattr-hook",
        "class A:\n    def __getattr__(self, n):\n        pass",
        underscore_name("__getattr__"),
    ),
    (
        "class-metaclass",
        "class A(metaclass=type):\n    pass",
        Refused("class keywords (such as metaclass=) are not allowed in job code"),
    ),
    (
        "class-exception-allowed",
        "class Oops(Exception):\n    pass\ntry:\n    raise Oops('x')\nexcept Oops as e:\n"
        "    m = str(e)\nfn(lambda s: {**s, 'm': m})",
        Allowed({"data": {}, "m": "x"}),
    ),
    # output never reaches the real stdout
    (
        "print-to-file",
        "fn(lambda s: print('x', file=None))",
        Fails(TypeError, "print() got an unexpected keyword argument 'file'"),
    ),
]


@pytest.mark.parametrize(
    ("source", "expected"),
    [pytest.param(source, expected, id=case_id) for case_id, source, expected in CORPUS],
)
def test_hostile_job_has_its_exact_outcome(source: str, expected: object) -> None:
    assert outcome_of(source) == expected


def test_corpus_covers_at_least_sixty_jobs() -> None:
    assert len(CORPUS) >= 60
    assert len({case_id for case_id, _, _ in CORPUS}) == len(CORPUS)


def test_every_problem_of_a_hostile_job_is_reported() -> None:
    source = "x = ().__class__\ny = eval('1')\nimport os\n"
    with pytest.raises(CompileError) as caught:
        compile_job(source)
    assert [(p.line, p.column) for p in caught.value.problems] == [(1, 8), (2, 5), (3, 1)]
