"""The format guard: attribute fields refused in every template, however it is reached."""

from __future__ import annotations

from collections import UserString
from typing import Any

import pytest

from statefn import SecurityError
from statefn._formatting import format_target


def test_format_guard_passes_templates_without_attribute_fields() -> None:
    assert format_target("{0}-{x[k]}-{1:>{2}}").format(1, "b", 3, x={"k": "v"}) == "1-v-  b"
    assert format_target(str).format_map("{a}", {"a": 1}) == "1"


@pytest.mark.parametrize(
    "template", ["{0.real}", "{x.y}", "{0[a].b}", "{0:{1.imag}}", UserString("{0.real}")]
)
def test_format_guard_refuses_attribute_fields(template: Any) -> None:
    with pytest.raises(SecurityError, match=r"is not allowed: fields of str\.format"):
        format_target(template).format(1, 2, x=1)


def test_format_guard_leaves_other_objects_alone() -> None:
    class Report:
        def format(self) -> str:
            return "report"

    report = Report()
    assert format_target(report) is report


class _Flipping(UserString):
    """A template whose ``data`` answers harmlessly once, then with an attribute field."""

    def __init__(self) -> None:
        self.reads = 0

    @property  # type: ignore[override]
    def data(self) -> str:
        self.reads += 1
        return "{0}" if self.reads == 1 else "{0.__class__}"


def test_format_guard_formats_the_very_template_it_checked() -> None:
    assert format_target(_Flipping()).format(1) == "1"
    assert format_target(UserString).format(_Flipping(), 1) == "1"


def test_a_string_class_with_its_own_format_keeps_it() -> None:
    class Loud(str):
        def format(self, *args: object, **kwargs: object) -> str:
            return "own"

    assert format_target(Loud("{0.real}")).format(1) == "own"
    with pytest.raises(SecurityError):
        format_target(Loud("{0.real}")).format_map({})
