"""The escape corpus: hostile jobs, one per row, each with its exact outcome.

Each job is compiled and, when it compiles, loaded and run on ``{"data": {}}``. The
outcome is one of: ``Refused`` (a ``CompileError``; its first problem's message),
``Forbidden`` (a ``SecurityError`` at run time), ``Fails`` (an ordinary exception: the
thing is simply not there) or ``Allowed`` (the final state: harmless look-alikes of
hostile code must keep working).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from types import CodeType, FrameType, ModuleType, TracebackType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import statefn
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


def hierarchy(attr: str) -> Refused:
    return Refused(
        f"attribute '{attr}' is not allowed: job code may not climb or change class hierarchies"
    )


def internals_forbidden(attr: str) -> Forbidden:
    return Forbidden(internals(attr).message)


def unguarded_format(attr: str) -> str:
    return (
        f"attribute '{attr}' is not allowed here: str.{attr} can only be reached as "
        f"x.{attr}, where its template is checked"
    )


TYPE_OF_CLASS = (
    "type() of a class is not allowed in job code: a metaclass makes classes from a dict of "
    "names chosen at run time"
)
SURROGATE_NAME = (
    "the job cannot be compiled: 'utf-8' codec can't encode character '\\ud800' in "
    "position 0: surrogates not allowed"
)
RE_DEBUG = "re.DEBUG is not allowed in job code: it prints to the process's standard output"
TOO_COMPLEX = "the job cannot be compiled: too deeply nested or too large"


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
        "format-spec-nested-thousands-deep",
        "x = '" + "{0:" * 3000 + "}" * 3000 + "'.format(1)",
        Fails(ValueError, "Max string recursion exceeded"),
    ),
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
        hierarchy("mro"),
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
    # match class patterns read attributes the class names at run time (__match_args__)
    (
        "match-positional-namedtuple-frame",
        "import collections\nP = collections.namedtuple('P', ['gi_frame'])\n"
        "class X(P, collections.UserDict):\n    pass\n"
        "def g():\n    yield 1\ngen = g()\n"
        "match gen:\n    case X(fr):\n        found = fr\n",
        internals_forbidden("gi_frame"),
    ),
    (
        "match-positional-frame-via-abc-register",
        "import collections\nP = collections.namedtuple('P', ['gi_frame'])\n"
        "class X(P, collections.UserDict):\n    pass\n"
        "def g():\n    yield 1\ngen = g()\nX.register(type(gen))\n"
        "match gen:\n    case X(fr):\n        found = fr\n",
        hierarchy("register"),
    ),
    (
        "match-positional-namedtuple-f-globals",
        "import collections\nP = collections.namedtuple('P', 'f_globals')\n"
        "match P(1):\n    case P(g):\n        x = g",
        internals_forbidden("f_globals"),
    ),
    (
        "match-positional-namedtuple-f-back-second",
        "import collections\nP = collections.namedtuple('P', 'a f_back')\n"
        "match P(1, 2):\n    case P(a, b):\n        x = b",
        internals_forbidden("f_back"),
    ),
    (
        "match-positional-namedtuple-tb-frame-nested",
        "import collections\nP = collections.namedtuple('P', 'tb_frame')\n"
        "match [P(1)]:\n    case [P(t)]:\n        x = t",
        internals_forbidden("tb_frame"),
    ),
    (
        "match-positional-namedtuple-format",
        "import collections\nP = collections.namedtuple('P', 'format')\n"
        "match P(1):\n    case P(f):\n        x = f",
        Forbidden(unguarded_format("format")),
    ),
    (
        "match-positional-in-or-pattern",
        "import collections\nP = collections.namedtuple('P', 'co_code')\n"
        "match 1:\n    case str(c) | P(c):\n        x = c\n    case _:\n        pass",
        internals_forbidden("co_code"),
    ),
    (
        "match-positional-class-through-attribute",
        "import collections\nclass NS:\n    pass\nns = NS()\n"
        "ns.P = collections.namedtuple('P', 'gi_code')\n"
        "match ns.P(1):\n    case ns.P(c):\n        x = c",
        internals_forbidden("gi_code"),
    ),
    (
        "match-positional-inside-function",
        "import collections\nP = collections.namedtuple('P', 'cr_frame')\n"
        "def peek(v):\n    match v:\n        case P(c):\n            return c\n"
        "fn(lambda s: {**s, 'x': str(peek(P(1)))})",
        internals_forbidden("cr_frame"),
    ),
    (
        "match-positional-refused-even-when-caught",
        "import collections\nP = collections.namedtuple('P', 'ag_frame')\n"
        "try:\n    match P(1):\n        case P(c):\n            pass\nexcept Exception:\n    pass",
        internals_forbidden("ag_frame"),
    ),
    (
        "match-keyword-format",
        "match 'x':\n    case str(format=f):\n        pass",
        Refused(unguarded_format("format")),
    ),
    (
        "match-keyword-format-map",
        "match 'x':\n    case str(format_map=f):\n        pass",
        Refused(unguarded_format("format_map")),
    ),
    (
        "match-keyword-mro",
        "match int:\n    case type(mro=m):\n        pass",
        hierarchy("mro"),
    ),
    (
        "match-value-format",
        "t = '{0.real}'\nmatch 1:\n    case t.format:\n        pass",
        Refused(unguarded_format("format")),
    ),
    (
        "match-subject-format-guarded",
        "t = '{0.real}'\nfn(lambda s: [x for x in [1]])\nmatch t.format(1):\n    case _:\n"
        "        pass",
        Forbidden(format_field("0.real")),
    ),
    (
        "match-class-from-format-attribute-compiles",
        "class NS:\n    pass\nns = NS()\nns.format = int\n"
        "match 5:\n    case ns.format(v):\n        x = v\nfn(lambda s: {**s, 'v': x})",
        Allowed({"data": {}, "v": 5}),
    ),
    (
        "match-positional-builtin-allowed",
        "match 5:\n    case int(v):\n        x = v\nfn(lambda s: {**s, 'v': x})",
        Allowed({"data": {}, "v": 5}),
    ),
    (
        "match-positional-namedtuple-allowed",
        "import collections\nP = collections.namedtuple('P', 'a b')\n"
        "match [P(1, 2)]:\n    case [P(a, b)]:\n        x = a + b\nfn(lambda s: {**s, 'v': x})",
        Allowed({"data": {}, "v": 3}),
    ),
    # metaclasses and class factories: classes made from names chosen at run time
    ("type-of-a-class", "M = type(int)", Forbidden(TYPE_OF_CLASS)),
    ("type-of-an-abc", "import collections\nM = type(collections.UserDict)", Forbidden(TYPE_OF_CLASS)),
    ("type-of-an-enum", "import re\nM = type(re.RegexFlag)", Forbidden(TYPE_OF_CLASS)),
    ("type-of-type-of-value", "M = type(type(1))", Forbidden(TYPE_OF_CLASS)),
    (
        "type-of-a-job-class",
        "class A:\n    pass\nM = type(A)",
        Forbidden(TYPE_OF_CLASS),
    ),
    (
        "metaclass-call-three-arguments",
        "import collections\nX = type(collections.UserDict)('X', (), {'__match_args__': ('gi_frame',)})",
        Forbidden(TYPE_OF_CLASS),
    ),
    ("metaclass-subclass", "class M(type(int)):\n    pass", Forbidden(TYPE_OF_CLASS)),
    (
        "enum-functional-api-on-regex-flag",
        "import re\nE = re.RegexFlag('E', {'__match_args__': ('gi_frame',)})",
        Fails(TypeError, "<enum 'E'> cannot extend <flag 'RegexFlag'>"),
    ),
    (
        "type-of-an-enum-member-allowed",
        "import re\nfn(lambda s: {**s, 'x': type(re.IGNORECASE) is re.RegexFlag})",
        Allowed({"data": {}, "x": True}),
    ),
    ("mro-to-enum", "import re\nE = re.RegexFlag.mro()[-2]", hierarchy("mro")),
    ("mro-to-abc", "import collections\nM = collections.UserDict.mro()[1]", hierarchy("mro")),
    ("mro-unbound", "import re\nm = type.mro", hierarchy("mro")),
    (
        "abc-register-stdlib",
        "import collections\ncollections.UserString.register(int)",
        hierarchy("register"),
    ),
    (
        "abc-register-statistics-fraction",
        "import statistics\nstatistics.Fraction.register(str)",
        hierarchy("register"),
    ),
    ("enum-from-uuid", "from uuid import Enum", Refused("cannot import name 'Enum' from 'uuid'")),
    (
        "enum-attribute-of-uuid",
        "import uuid\nfn(lambda s: uuid.Enum)",
        Fails(AttributeError, "module 'uuid' has no attribute 'Enum': the sandbox removes it from jobs"),
    ),
    (
        "enum-functional-api-on-populated-enum",
        "import uuid\nE = uuid.SafeUUID('E', {'__str__': print}, type=ValueError)",
        Fails(TypeError, "<enum 'E'> cannot extend <enum 'SafeUUID'>"),
    ),
    (
        "metaclass-base-refused",
        "class M(type(1).mro):\n    pass",
        hierarchy("mro"),
    ),
    # str.format, however obtained, formats the template it checked
    (
        "format-user-string-data-flips",
        "import collections\nclass T(collections.UserString):\n    reads = []\n"
        "    def get(self):\n        T.reads.append(1)\n"
        "        return '{0}' if len(T.reads) == 1 else '{0.__class__}'\n"
        "    def put(self, value):\n        pass\n    data = property(get, put)\n"
        "fn(lambda s: {**s, 'x': T('a').format(1)})",
        Allowed({"data": {}, "x": "1"}),
    ),
    (
        "format-map-user-string-data-flips",
        "import collections\nclass T(collections.UserString):\n    reads = []\n"
        "    def get(self):\n        T.reads.append(1)\n"
        "        return '{a}' if len(T.reads) == 1 else '{a.__class__}'\n"
        "    def put(self, value):\n        pass\n    data = property(get, put)\n"
        "fn(lambda s: {**s, 'x': T('a').format_map({'a': 1})})",
        Allowed({"data": {}, "x": "1"}),
    ),
    (
        "format-unbound-user-string-data-flips",
        "import collections\nclass T(collections.UserString):\n    reads = []\n"
        "    def get(self):\n        T.reads.append(1)\n"
        "        return '{0}' if len(T.reads) == 1 else '{0.__class__}'\n"
        "    def put(self, value):\n        pass\n    data = property(get, put)\n"
        "fn(lambda s: {**s, 'x': collections.UserString.format(T('a'), 1)})",
        Allowed({"data": {}, "x": "1"}),
    ),
    (
        "format-super-user-string-data",
        "import collections\nclass T(collections.UserString):\n"
        "    def go(self):\n        return super().format(1)\n"
        "fn(lambda s: {**s, 'x': T('{0.__class__}').go()})",
        Forbidden(format_field("0.__class__")),
    ),
    (
        "format-unbound-through-super-of-a-class",
        "class T(str):\n    pass\nf = super(T, T).format\nfn(lambda s: {**s, 'x': f('{0.real}', 1)})",
        Forbidden(format_field("0.real")),
    ),
    (
        "format-unbound-through-super-in-classmethod",
        "class T(str):\n    @classmethod\n    def go(cls):\n        return super().format_map\n"
        "fn(lambda s: {**s, 'x': T.go()('{a.real}', {'a': 1})})",
        Forbidden(format_field("a.real")),
    ),
    (
        "format-str-subclass-own-method-is-job-code",
        "class T(str):\n    def format(self, *a):\n        return str.format('{0.imag}', 1)\n"
        "fn(lambda s: {**s, 'x': T('{0}').format(1)})",
        Forbidden(format_field("0.imag")),
    ),
    (
        "format-str-subclass-format-map-replaced-format-still-guarded",
        "class T(str):\n    def format_map(self, m):\n        return 'mine'\n"
        "fn(lambda s: {**s, 'x': T('{0.real}').format(1)})",
        Forbidden(format_field("0.real")),
    ),
    (
        "format-method-stored-in-class-body",
        "class T(str):\n    format = str.format\n"
        "fn(lambda s: {**s, 'x': T('{0}').format('{0.real}', 1)})",
        Forbidden(format_field("0.real")),
    ),
    (
        "format-refused-even-when-caught",
        "t = '{0.real}'\ntry:\n    x = t.format(1)\nexcept Exception:\n    pass",
        Forbidden(format_field("0.real")),
    ),
    (
        "format-mapped-over-templates",
        "fn(lambda s: {**s, 'x': list(map(str.format, ['{0}', '{0.real}'], [1, 2]))})",
        Forbidden(format_field("0.real")),
    ),
    (
        "format-sorted-key",
        "fn(lambda s: {**s, 'x': sorted(['{0.real}'], key=str.format)})",
        Forbidden(format_field("0.real")),
    ),
    # pathological sources compile or are a CompileError
    (
        "huge-expression",
        "x = " + "+".join(["1"] * 200_000),
        Refused(TOO_COMPLEX),
    ),
    ("deep-unary", "x = " + "-" * 100_000 + "1", Refused(TOO_COMPLEX)),
    ("deep-parentheses", "x = " + "(" * 5000 + "1" + ")" * 5000, Refused("SyntaxError: too many nested parentheses")),
    ("null-byte", "x = 1\0", Refused("SyntaxError: source code string cannot contain null bytes")),
    (
        "lone-surrogate",
        "x = '\ud800'",
        Refused(
            "the job cannot be compiled: 'utf-8' codec can't encode character '\\ud800' in "
            "position 5: surrogates not allowed"
        ),
    ),
    ("lone-surrogate-name", "\ud800 = 1", Refused(SURROGATE_NAME)),
    # the process's own output through allowed modules
    ("re-debug-flag", "import re\nx = re.compile('a', re.DEBUG)", Forbidden(RE_DEBUG)),
    (
        "re-debug-refused-even-when-caught",
        "import re\ntry:\n    x = re.compile('a', re.DEBUG)\nexcept Exception:\n    pass",
        Forbidden(RE_DEBUG),
    ),
    ("re-debug-as-number", "import re\nx = re.search('a', 'a', 128)", Forbidden(RE_DEBUG)),
    (
        "re-debug-keyword-combined",
        "import re\nx = re.sub('a', 'b', 'a', flags=re.DEBUG | re.I)",
        Forbidden(RE_DEBUG),
    ),
    ("re-debug-split-position", "import re\nx = re.split('a', 'a', 0, 128)", Forbidden(RE_DEBUG)),
    ("re-debug-scanner", "import re\nx = re.Scanner([('a+', None)], re.DEBUG)", Forbidden(RE_DEBUG)),
    (
        "re-scanner-allowed",
        "import re\nfn(lambda s: {**s, 'x': re.Scanner([('a+', lambda _, t: t)]).scan('aa')[0]})",
        Allowed({"data": {}, "x": ["aa"]}),
    ),
    (
        "base64-command-line",
        "import base64\nfn(lambda s: (base64.main(), s)[1])",
        Fails(
            AttributeError,
            "module 'base64' has no attribute 'main': the sandbox removes it from jobs",
        ),
    ),
    (
        "re-flags-allowed",
        "import re\nfn(lambda s: {**s, 'x': re.sub('A', 'b', 'a', flags=re.I)})",
        Allowed({"data": {}, "x": "b"}),
    ),
    # the file system through allowed modules
    (
        "zoneinfo-available-timezones",
        "from zoneinfo import available_timezones",
        Refused("cannot import name 'available_timezones' from 'zoneinfo'"),
    ),
    (
        "zoneinfo-tzpath",
        "import zoneinfo\nfn(lambda s: {**s, 'p': zoneinfo.TZPATH})",
        Fails(AttributeError, "module 'zoneinfo' has no attribute 'TZPATH': the sandbox removes it from jobs"),
    ),
    (
        "zoneinfo-key-traversal",
        "import zoneinfo\nz = zoneinfo.ZoneInfo('../../../etc/passwd')",
        Fails(
            ValueError,
            "ZoneInfo keys must refer to subdirectories of TZPATH, got: ../../../etc/passwd",
        ),
    ),
    (
        "zoneinfo-absolute-key",
        "import zoneinfo\nz = zoneinfo.ZoneInfo('/etc/passwd')",
        Fails(ValueError, "ZoneInfo keys may not be absolute paths, got: /etc/passwd"),
    ),
    (
        "datetime-capsule",
        "import datetime\nfn(lambda s: datetime.datetime_CAPI)",
        Fails(AttributeError, "module 'datetime' has no attribute 'datetime_CAPI': the sandbox removes it from jobs"),
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


# -- job objects crossing into the runtime ----------------------------------------------------
#
# After an operation returns, the runtime touches only exact built-in JSON types: no method a
# job class defines runs for it, on the step's worker or on the run's own thread.

SECRETS = {"token": "s3cret-token-value", "base_url": "https://real.example"}


def _exact_json(value: Any) -> bool:
    if type(value) is dict:
        return all(type(k) is str and _exact_json(v) for k, v in value.items())
    if type(value) is list:
        return all(_exact_json(item) for item in value)
    return value is None or type(value) in (str, int, float, bool)


KEEP_CONFIGURATION = """
class Keep(dict):
    def pop(self, *args):
        return None
fn(lambda s: Keep(s))
"""


def test_a_dict_subclass_cannot_keep_configuration_in_the_output() -> None:
    result = statefn.run(KEEP_CONFIGURATION, {"data": {}, "configuration": SECRETS})
    assert result == {"data": {}}
    assert type(result) is dict


REDIRECT_CREDENTIALS = """
class Redirect(dict):
    def get(self, key, default=None):
        if key == 'configuration':
            return {'base_url': 'https://attacker.example'}
        return default
fn(lambda s: Redirect(s))
"""


def test_an_upstream_dict_subclass_cannot_redirect_downstream_credentials() -> None:
    plan = {
        "workflow": {
            "credentials": {"base_url": "https://real.example"},
            "steps": [
                {"id": "a", "expression": REDIRECT_CREDENTIALS, "next": "b"},
                {"id": "b", "expression": "fn(lambda s: {**s, 'seen': s['configuration']})"},
            ],
        }
    }
    result = statefn.run(plan)
    assert result["seen"] == {"base_url": "https://real.example"}


LOG_FROM_GET = """
class Loud(dict):
    def get(self, key, default=None):
        print('job code ran in the runtime')
        return default
    def items(self):
        print('job code ran in the runtime')
        return []
fn(lambda s: Loud(s))
"""


def test_methods_of_a_returned_dict_never_run_after_the_operation() -> None:
    lines: list[tuple[str, Any]] = []
    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": LOG_FROM_GET, "next": {"b": "state.get('data') == {}"}},
                {"id": "b", "expression": "fn(lambda s: s)"},
            ]
        }
    }
    result = statefn.run(plan, on_event=lambda name, payload: lines.append((name, payload)))
    assert result == {"data": {}}
    assert [p for name, p in lines if name == "log"] == []


NESTED_SUBCLASSES = """
import re
class Rows(list):
    def copy(self):
        return ['forged']
class Text(str):
    def upper(self):
        return 'forged'
fn(lambda s: {**s, 'data': {'rows': Rows([1, Text('x')]), Text('k'): Text('v'),
                            'flag': re.IGNORECASE, 'pair': (Text('a'), 2.5)}})
"""


def test_nested_subclasses_leave_a_step_as_exact_json_types() -> None:
    result = statefn.run(NESTED_SUBCLASSES)
    assert result == {"data": {"rows": [1, "x"], "k": "v", "flag": 2, "pair": ["a", 2.5]}}
    assert _exact_json(result)


FORGED_ISOFORMAT = """
import datetime
class When(datetime.datetime):
    def isoformat(self, *args):
        return 'forged'
fn(lambda s: {**s, 'when': When(2020, 1, 2)})
"""


def test_a_datetime_subclass_is_written_by_the_runtime_not_by_its_own_method() -> None:
    assert statefn.run(FORGED_ISOFORMAT) == {"data": {}, "when": "2020-01-02T00:00:00"}


FORGED_ERROR = """
try:
    import no_such_adaptor
except Exception as caught:
    Base = type(caught)
class Quiet(Base):
    severity = 'fail'
    name = 'Forged'
    def to_dict(self):
        return {'source': 'runtime', 'name': 'Forged', 'severity': 'fail', 'message': 'x'}
def boom(state):
    error = Quiet('raised by the job')
    error.message = 'forged message'
    raise error
fn(boom)
"""


def test_an_error_class_made_by_the_job_is_classified_as_job_code() -> None:
    result = statefn.run(FORGED_ERROR)
    record = result["errors"]["job-1"]
    assert record["name"] == "JobError"
    assert record["message"] == "raised by the job"
    assert record["severity"] == "fail"
    assert _exact_json(result)


# -- shared library state: each run gets its own ------------------------------------------------

LOOSEN_DEFAULT_CONTEXT = """
import decimal
decimal.DefaultContext.traps[decimal.DivisionByZero] = False
cleared = decimal.BasicContext.clear_traps()
fn(lambda s: s)
"""


def test_a_run_cannot_change_the_decimal_default_contexts_of_the_process() -> None:
    import decimal

    statefn.run(LOOSEN_DEFAULT_CONTEXT)
    assert decimal.DefaultContext.traps[decimal.DivisionByZero]
    assert decimal.BasicContext.traps[decimal.Overflow]


LOOSEN_CURRENT_CONTEXT = """
import decimal
decimal.getcontext().traps[decimal.DivisionByZero] = False
fn(lambda s: {**s, 'x': str(decimal.Decimal(1) / 0)})
"""

DIVIDE_BY_ZERO = "import decimal\nfn(lambda s: {**s, 'x': str(decimal.Decimal(1) / 0)})"


def test_a_run_cannot_change_the_current_decimal_context_of_the_host_or_later_runs() -> None:
    import decimal

    host = decimal.getcontext()
    assert statefn.run(LOOSEN_CURRENT_CONTEXT)["x"] == "Infinity"
    assert decimal.getcontext() is host
    assert host.traps[decimal.DivisionByZero]
    later = statefn.run(DIVIDE_BY_ZERO)
    assert later["errors"]["job-1"]["subtype"] == "DivisionByZero"


FIRST_DECIMAL_USE = """
import sys
import statefn
assert "decimal" not in sys.modules and "_decimal" not in sys.modules
options = {"timeout_ms": 5000} if sys.argv[3] == "timeout" else {}
loosened = statefn.run(sys.argv[1], **options)["x"]
import decimal
host = decimal.getcontext().traps[decimal.DivisionByZero]
later = statefn.run(sys.argv[2], **options)["errors"]["job-1"]["subtype"]
print(loosened, host, later)
"""


@pytest.mark.parametrize("options", ["inline", "timeout"])
def test_a_run_that_first_imports_decimal_keeps_its_context_to_itself(options: str) -> None:
    """In a process that has not imported decimal, the context job code makes is the step's
    alone: neither the host nor a later run sees its traps changed."""
    done = subprocess.run(
        [sys.executable, "-c", FIRST_DECIMAL_USE, LOOSEN_CURRENT_CONTEXT, DIVIDE_BY_ZERO, options],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["Infinity", "True", "DivisionByZero"]


SEED_SHARED_GENERATOR = """
import random
seeded = random.seed(7)
fn(lambda s: s)
"""


def test_a_run_cannot_seed_the_random_generator_of_the_process() -> None:
    import random

    statefn.run(SEED_SHARED_GENERATOR)
    assert random.random() != random.Random(7).random()


def test_two_runs_do_not_share_a_random_generator() -> None:
    seeded = "import random\nx = random.seed(7)\nfn(lambda s: s)"
    draw = "import random\nfn(lambda s: {**s, 'x': random.random()})"
    plan = {"workflow": {"steps": [{"id": "a", "expression": seeded, "next": "b"},
                                   {"id": "b", "expression": draw}]}}
    assert statefn.run(plan)["x"] != random_after_seed(7)


def random_after_seed(seed: int) -> float:
    import random

    return random.Random(seed).random()


# -- masking: every form a secret takes when printed ------------------------------------------

HOSTILE_SECRETS = [
    "it's-a-\"secret\"",
    "back\\slash-secret",
    "tab\tand\nnewline-secret",
    "pässwörd-sécret",
    "emoji-\U0001f511-secret",
]

SHOWN = {
    "dict-repr": "print(s['configuration'])",
    "repr": "print(repr(s['configuration']['token']))",
    "ascii": "print(ascii(s['configuration']))",
    "json": "print(json.dumps(s['configuration']))",
    "json-unicode": "print(json.dumps(s['configuration'], ensure_ascii=False))",
    "bytes-repr": "print(s['configuration']['token'].encode())",
    "base64": "print(base64.b64encode(s['configuration']['token'].encode()).decode())",
    "base64-urlsafe": "print(base64.urlsafe_b64encode(s['configuration']['token'].encode()))",
    "list-repr": "print([s['configuration']['token']])",
    "console-warn": "console.warn(s['configuration'])",
}


@pytest.mark.parametrize("secret", HOSTILE_SECRETS)
@pytest.mark.parametrize("shown", SHOWN.values(), ids=SHOWN.keys())
def test_a_printed_secret_is_masked_in_every_form(secret: str, shown: str) -> None:
    job = f"import json\nimport base64\nfn(lambda s: {shown} or s)"
    messages: list[str] = []
    statefn.run(
        job,
        {"data": {}, "configuration": {"token": secret}},
        on_event=lambda name, payload: messages.append(payload["message"]) if name == "log" else None,
    )
    assert len(messages) == 1
    assert "***" in messages[0]
    for part in secret.split("-"):
        if len(part) >= 6:
            assert part not in messages[0]


def test_a_long_secret_a_message_cuts_short_is_masked_too() -> None:
    secret = "tok-" + "x7Qz" * 75  # 304 characters: int() shows the first 199 of it
    messages: list[str] = []
    result = statefn.run(
        "fn(lambda s: int(s['configuration']['token']))",
        {"data": {}, "configuration": {"token": secret}},
        on_event=lambda name, payload: messages.append(str(payload)),
    )
    error = result["errors"]["job-1"]["message"]
    assert error == "ValueError: invalid literal for int() with base 10: '***"
    assert not [text for text in messages if secret[:32] in text]


# -- information leaks ---------------------------------------------------------------------------

TLS_PROBE = """
fn(lambda s: {**s, 'configuration': {'base_url': 'https://127.0.0.1:9',
                                     'tls': {'verify': s['data']['path']}}})
get('/x')
"""


@pytest.mark.parametrize("path", ["/nonexistent/ca.pem", "/etc/hostname", "/etc", "/proc/self/environ"])
def test_http_tls_paths_do_not_tell_whether_a_file_exists(path: str) -> None:
    plan = {"workflow": {"steps": [{"id": "probe", "adaptors": ["http"], "expression": TLS_PROBE}]}}
    result = statefn.run(plan, {"data": {"path": path}})
    record = result["errors"]["probe"]
    assert record["message"] == (
        "Could not load the TLS files named in configuration tls: each must be a readable "
        "PEM file"
    )
    assert "details" not in record or path not in str(record["details"])


# -- work that outlives its budget -------------------------------------------------------------

SLOW_CONDITION = "any(x < 0 for x in range(10**8))"


def test_an_edge_condition_counts_against_its_steps_timeout() -> None:
    import time

    plan = {
        "workflow": {
            "steps": [
                {"id": "a", "expression": "fn(lambda s: s)", "next": {"b": SLOW_CONDITION}},
                {"id": "b", "expression": "fn(lambda s: s)"},
            ]
        },
        "options": {"timeout": 300},
    }
    started = time.perf_counter()
    with pytest.raises(statefn.StepTimeoutError, match="Job took longer than 300ms"):
        statefn.run(plan)
    assert time.perf_counter() - started < 2


# -- property: no combination of allowed constructs reaches the interpreter ----------------

_NAMES = [
    "gi_frame", "gi_code", "f_back", "f_globals", "f_builtins", "tb_frame", "co_code",
    "cr_frame", "ag_frame", "mro", "register", "format", "format_map", "real", "args",
    "__class__", "__globals__", "__self__", "__dict__", "__subclasses__", "__bases__",
    "__builtins__", "__closure__", "__func__", "__code__", "__traceback__",
]
_SUBJECTS = [
    "gen", "(lambda: 0)", "fn", "print", "console", "S", "json", "int", "''", "'{0}'",
    "Exception()", "type(gen)", "decimal.getcontext()", "collections.UserString('x')",
    "re.compile('a')", "datetime.datetime(2020, 1, 1)", "iter([1])",
]
_TEMPLATES = ["{0!s:.1}", "{0.__class__}", "{0.gi_frame}", "{0[0]}", "{x.real}", "{0:{1.real}}"]
_PRELUDE = (
    "import json\nimport re\nimport decimal\nimport datetime\nimport collections\n"
    "def make():\n    yield 1\ngen = make()\nfound = []\n"
)


@st.composite
def job_steps(draw: Any) -> str:
    subject = draw(st.sampled_from(_SUBJECTS))
    name = draw(st.sampled_from(_NAMES))
    template = draw(st.sampled_from(_TEMPLATES))
    fields = draw(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=3, unique=True))
    return draw(
        st.sampled_from(
            [
                f"x = {subject}.{name}",
                f"x = type({subject})",
                f"x = type({subject})('X', (), {{'__match_args__': ('{name}',)}})",
                f"x = {template!r}.format({subject}, {subject}, x={subject})",
                f"t = {template!r}\nx = t.format({subject}, {subject}, x={subject})",
                f"x = str.format({template!r}, {subject}, {subject}, x={subject})",
                f"P = collections.namedtuple('P', {fields!r})\n"
                f"match {subject}:\n    case P(*rest):\n        x = rest\n    case _:\n        x = 0",
                f"P = collections.namedtuple('P', {fields!r})\n"
                "class X(P, collections.UserDict):\n    pass\n"
                f"X.register(type({subject}))\n"
                f"match {subject}:\n    case X(*rest):\n        x = rest\n    case _:\n        x = 0",
                f"match {subject}:\n    case object({name}=v):\n        x = v\n    case _:\n"
                "        x = 0",
                f"x = [{subject}][0].{name}",
                f"x = (lambda o: o.{name})({subject})",
                f"x = {subject}.mro()",
            ]
        )
    )


@st.composite
def hostile_jobs(draw: Any) -> str:
    steps = draw(st.lists(job_steps(), min_size=1, max_size=3))
    body = "\n".join(f"try:\n    {line.replace(chr(10), chr(10) + '    ')}\n"
                     "    found.append(x)\nexcept Exception:\n    pass" for line in steps)
    return _PRELUDE + body + "\nfn(lambda s: {**s, 'found': found})\n"


def _reaches_the_interpreter(value: Any, depth: int = 0) -> bool:
    if isinstance(value, FrameType | CodeType | TracebackType | ModuleType):
        return True
    if isinstance(value, type) and issubclass(value, type):
        return True
    if isinstance(value, dict) and ("__builtins__" in value or "__import__" in value):
        return True
    if value in _INTERPRETER_FUNCTIONS:
        return True
    if depth < 4 and isinstance(value, list | tuple):
        return any(_reaches_the_interpreter(item, depth + 1) for item in value)
    return False


_INTERPRETER_FUNCTIONS = [eval, exec, compile, open, getattr, setattr, __import__, globals]
# What an attribute field of a format template would print, had it read one of them.
_INTERPRETER_MARKS = ("<frame", "<code", "<module", "<traceback", "mappingproxy", "<class")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_jobs())
def test_no_combination_of_allowed_constructs_reaches_the_interpreter(source: str) -> None:
    outcome = outcome_of(source)
    assert isinstance(outcome, Refused | Forbidden | Fails | Allowed)
    if isinstance(outcome, Allowed):
        found = outcome.state["found"]
        assert not _reaches_the_interpreter(found), (source, found)
        printed = " ".join(item for item in found if isinstance(item, str))
        assert not any(mark in printed for mark in _INTERPRETER_MARKS), (source, printed)


TOP_LEVEL_KEY_SUBCLASS = """
class Text(str):
    def startswith(self, *args):
        return True
fn(lambda s: {**s, Text('k'): Text('v')})
"""


def test_a_top_level_key_of_a_job_string_class_leaves_as_a_built_in_string() -> None:
    result = statefn.run(TOP_LEVEL_KEY_SUBCLASS)
    assert result == {"data": {}, "k": "v"}
    assert _exact_json(result)


STRING_ERROR = """
import collections
class Loud(collections.UserString, Exception):
    def get(self):
        print('job code ran while the error was classified')
        return 'forged'
    def put(self, value):
        pass
    data = property(get, put)
def boom(state):
    raise Loud('raised by the job')
fn(boom)
"""


def test_an_error_class_with_a_library_str_is_read_without_job_code() -> None:
    lines: list[Any] = []
    result = statefn.run(
        STRING_ERROR, on_event=lambda name, payload: lines.append(payload) if name == "log" else None
    )
    assert result["errors"]["job-1"]["message"] == "raised by the job"
    assert lines == []
