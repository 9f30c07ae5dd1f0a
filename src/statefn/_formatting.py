"""``str.format`` in job code: which template fields are refused, and the guard.

A format template's fields may index (``{0[key]}``) but not read attributes
(``{0.__class__}``): that would be attribute access by a name chosen at run time, past the
sandbox's policy. A literal template is checked when the job compiles (``_sandbox``); every
other ``x.format``/``x.format_map`` is looked up on ``format_target(x)``, which stands for a
string or a string type and checks the template when the method is called. The template
checked is the exact ``str`` that is formatted, read once, and formatted with ``str``'s own
methods; a method a job's class defines in their place stays job code.
"""

from __future__ import annotations

import string
from collections import UserString
from collections.abc import Callable
from typing import Any, NoReturn

from ._errors import SecurityError

__all__ = ["FORMAT_ATTRIBUTES", "format_field_message", "format_field_problem", "format_target"]

# Reading these is guarded where job code writes ``x.format`` (the template is checked when
# called); where a name is read with no place for a guard (match patterns), they are refused.
FORMAT_ATTRIBUTES = frozenset({"format", "format_map"})

_FORMATTER = string.Formatter()
# How deep format specs may nest in a template str.format accepts ("{0:{1}}" is one level;
# deeper is "Max string recursion exceeded"), with one level to spare.
_MAX_NESTING = 2


def format_field_message(field: str) -> str:
    """The problem with ``field``, a format field that reads an attribute."""
    return (
        f"format field '{{{field}}}' is not allowed: fields of str.format and "
        "str.format_map may not read attributes"
    )


def _reads_attribute(field: str) -> bool:
    # A field is ``arg_name ("." attribute | "[" key "]")*``; a dot inside brackets is
    # part of a key, which is an item lookup like any subscript in job code.
    in_key = False
    for char in field:
        if char == "[":
            in_key = True
        elif char == "]":
            in_key = False
        elif char == "." and not in_key:
            return True
    return False


def format_field_problem(template: str, depth: int = 0) -> str | None:
    """The first field of a ``str.format`` template that reads an attribute, else None."""
    if depth > _MAX_NESTING:
        return None  # str.format refuses it when called: "Max string recursion exceeded"
    try:
        parts = list(_FORMATTER.parse(template))
    except ValueError:
        return None  # str.format raises the same error when called
    for _literal, field, spec, _conversion in parts:
        if field is not None and _reads_attribute(field):
            return field
        if spec and "{" in spec:
            nested = format_field_problem(spec, depth + 1)
            if nested is not None:
                return nested
    return None


def _is_user_string(value: object) -> bool:
    # By the class's own bases: ``UserString.register`` must not change the answer.
    return UserString in type(value).__mro__


def _exact_template(template: object) -> object:
    """The exact ``str`` that formatting ``template`` uses, read once (a ``UserString``'s
    ``data`` may be a property that answers differently each time); other values as they
    are, for ``str.format`` to refuse."""
    if type(template) is str:
        return template
    if _is_user_string(template):
        template = getattr(template, "data", template)
    return str.__str__(template) if isinstance(template, str) else template


Refuse = Callable[[str], NoReturn]


def _raise(message: str) -> NoReturn:
    raise SecurityError(message)


def _checked_template(template: object, refuse: Refuse) -> object:
    exact = _exact_template(template)
    if type(exact) is str:
        field = format_field_problem(exact)
        if field is not None:
            refuse(format_field_message(field))
    return exact


_STRING_FORMATS = frozenset({str.format, str.format_map, UserString.format, UserString.format_map})


def _is_string_type(cls: type) -> bool:
    return issubclass(cls, str) or UserString in cls.__mro__


def _replaced(cls: type, name: str) -> bool:
    """Whether a class the job defined replaced ``cls``'s built-in ``format``/``format_map``
    (its own method is job code, and runs as such)."""
    return getattr(cls, name, None) not in _STRING_FORMATS


class _FormatGuard:
    """Stands for a string while its ``format``/``format_map`` is looked up: the built-in
    methods format the very template they checked, read once."""

    __slots__ = ("_refuse", "_subject")

    def __init__(self, subject: object, refuse: Refuse) -> None:
        self._subject = subject
        self._refuse = refuse

    def format(self, *args: Any, **kwargs: Any) -> Any:
        if _replaced(type(self._subject), "format"):
            return self._subject.format(*args, **kwargs)  # type: ignore[attr-defined]
        return str.format(_checked_template(self._subject, self._refuse), *args, **kwargs)  # type: ignore[arg-type]

    def format_map(self, mapping: Any) -> Any:
        if _replaced(type(self._subject), "format_map"):
            return self._subject.format_map(mapping)  # type: ignore[attr-defined]
        return str.format_map(_checked_template(self._subject, self._refuse), mapping)  # type: ignore[arg-type]


class _UnboundFormatGuard:
    """Stands for ``str`` (a subclass, ``UserString``) while its ``format`` is looked up."""

    __slots__ = ("_refuse", "_subject")

    def __init__(self, subject: type, refuse: Refuse) -> None:
        self._subject = subject
        self._refuse = refuse

    def format(self, template: object, /, *args: Any, **kwargs: Any) -> Any:
        if _replaced(self._subject, "format"):
            return self._subject.format(template, *args, **kwargs)  # type: ignore[attr-defined]
        return str.format(_checked_template(template, self._refuse), *args, **kwargs)  # type: ignore[arg-type]

    def format_map(self, template: object, mapping: Any) -> Any:
        if _replaced(self._subject, "format_map"):
            return self._subject.format_map(template, mapping)  # type: ignore[attr-defined]
        return str.format_map(_checked_template(template, self._refuse), mapping)  # type: ignore[arg-type]


def format_target(value: Any, refuse: Refuse = _raise) -> Any:
    """What ``value.format`` is looked up on: a guard when ``value`` is a string or a
    string type. ``refuse`` raises the ``SecurityError`` of a refused template (a job's
    guards record it)."""
    if isinstance(value, super):
        # ``super().format`` skips the job class's own method: the built-in one, bound to
        # ``super().__self__`` (``UserString``'s formats its ``data``), or unbound when
        # that is a class (``super(T, T)``, ``super()`` in a classmethod).
        subject = getattr(value, "__self__", None)
        if isinstance(subject, type):
            return _UnboundFormatGuard(str, refuse) if _is_string_type(subject) else value
        exact = _exact_template(subject)
        return _FormatGuard(exact, refuse) if type(exact) is str else value
    if isinstance(value, type):
        return _UnboundFormatGuard(value, refuse) if _is_string_type(value) else value
    if _is_string_type(type(value)):
        return _FormatGuard(value, refuse)
    return value
