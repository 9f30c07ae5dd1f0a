"""A state as a collapsible tree, and the diff of a step's input and output."""

from __future__ import annotations

import re

from statefn.serve._tree import Change, diff, path_text, short_json, tree


def test_objects_and_lists_fold_and_the_first_levels_are_open() -> None:
    html = str(tree({"data": {"rows": [{"a": 1}]}}, "out", open_depth=2))
    opened = re.findall(r'<details data-id="([^"]+)"( open)?>', html)
    assert opened == [
        ("out:$", " open"),
        ("out:data", " open"),
        ("out:data.rows", ""),
        ("out:data.rows[0]", ""),
    ]


def test_each_fold_counts_its_keys_or_items() -> None:
    html = str(tree({"a": [1, 2, 3], "b": {"x": 1}}))
    assert '<span class="k">a</span> <span class="count">3 items</span>' in html
    assert '<span class="k">b</span> <span class="count">1 key</span>' in html


def test_values_are_shown_as_json_by_type() -> None:
    html = str(tree({"s": "hi", "n": 1.5, "t": True, "z": None, "e": [], "o": {}}))
    for shown in (
        '<span class="v-str">&#34;hi&#34;</span>',
        '<span class="v-num">1.5</span>',
        '<span class="v-bool">true</span>',
        '<span class="v-null">null</span>',
        '<span class="v-empty">[]</span>',
        '<span class="v-empty">{}</span>',
    ):
        assert shown in html


def test_keys_and_strings_are_escaped_never_markup() -> None:
    html = str(tree({"<img src=x onerror=alert(1)>": "<script>alert(1)</script>"}))
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_big_state_is_cut_at_the_budget_and_says_how_much_was_left_out() -> None:
    html = str(tree({"rows": list(range(10_000))}, budget=100))
    assert html.count("<li>") < 110
    assert '<li class="more">… 9902 more not shown</li>' in html


def test_a_long_string_is_cut_and_says_how_many_characters_are_left_out() -> None:
    html = str(tree({"blob": "x" * 2500}))
    assert "… 500 more characters" in html


def test_paths_read_like_python_subscripts() -> None:
    assert path_text(()) == "$"
    assert path_text(("data", "rows", 3, "first name")) == 'data.rows[3]["first name"]'
    assert path_text((0, "a")) == "[0].a"


def test_diff_lists_added_removed_and_changed_values_in_document_order() -> None:
    before = {"data": {"rows": [1, 2, 3], "count": 3, "gone": True}, "keep": 1}
    after = {"data": {"rows": [1, 5], "count": "3", "new": {"x": 1}}, "keep": 1}
    found = diff(before, after)
    assert found.complete
    assert found.changes == [
        Change("data.rows[1]", "changed", 2, 5),
        Change("data.rows[2]", "removed", before=3),
        Change("data.count", "changed", 3, "3"),
        Change("data.gone", "removed", before=True),
        Change("data.new", "added", after={"x": 1}),
    ]


def test_diff_tells_true_from_one() -> None:
    assert diff({"a": 1}, {"a": True}).changes == [Change("a", "changed", 1, True)]


def test_equal_states_have_no_changes() -> None:
    state = {"data": {"rows": [{"a": [1, {"b": None}]}]}}
    assert diff(state, {"data": {"rows": [{"a": [1, {"b": None}]}]}}).changes == []


def test_a_diff_stops_at_its_limit_and_says_so() -> None:
    found = diff({"a": list(range(100))}, {"a": list(range(1, 101))}, limit=10)
    assert len(found.changes) == 10 and not found.complete
    exactly = diff({"a": 1, "b": 1}, {"a": 2, "b": 2}, limit=2)
    assert len(exactly.changes) == 2 and exactly.complete


def test_short_json_cuts_long_values() -> None:
    assert short_json({"a": [1, 2]}) == '{"a":[1,2]}'
    assert short_json("x" * 50, limit=10) == '"xxxxxxxx…'
