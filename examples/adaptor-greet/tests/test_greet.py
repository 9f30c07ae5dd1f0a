"""Tests for the greet adaptor: call the operation with a state dict and check the state."""

from __future__ import annotations

import pytest
from statefn_adaptor_greet import greet

from statefn.adaptor import AdaptorError


def test_greet_puts_a_greeting_in_data() -> None:
    state = greet("Ada")({"data": {"id": 1}, "references": []})
    assert state == {"data": {"greeting": "Hello, Ada!"}, "references": [{"id": 1}]}


def test_greet_resolves_lazy_arguments() -> None:
    op = greet(lambda state: state["data"]["name"], greeting="Hi")
    assert op({"data": {"name": "Grace"}})["data"] == {"greeting": "Hi, Grace!"}


def test_greet_fails_on_an_empty_name() -> None:
    with pytest.raises(AdaptorError, match="greet: the name is empty"):
        greet("")({})
