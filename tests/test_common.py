"""The common adaptor, against OpenFn language-common's documented behaviour."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from statefn.adaptor import AdaptorError, step_console
from statefn.adaptors.common import (
    array_to_string,
    as_,
    assert_,
    chunk,
    combine,
    compose_next_state,
    cursor,
    data_path,
    data_value,
    debug,
    each,
    field,
    fields,
    fn,
    fn_if,
    group,
    human_proper,
    join,
    last_reference_value,
    log,
    map_,
    merge,
    parse_csv,
    scrub_emojis,
    source,
    source_value,
    split_keys,
    to_array,
    validate,
)

STORE = {
    "store": {
        "book": [
            {"category": "reference", "author": "Nigel Rees", "title": "Sayings", "price": 8.95},
            {"category": "fiction", "author": "Evelyn Waugh", "title": "Sword", "price": 12.99},
            {"category": "fiction", "author": "Herman Melville", "title": "Moby", "price": 8.99},
        ],
        "bicycle": {"color": "red", "price": 19.95},
    }
}
TITLES = ["Sayings", "Sword", "Moby"]


def settle(value: Any) -> Any:
    """The value an operation produced, running it to the end if it is a coroutine."""
    if asyncio.iscoroutine(value):
        return asyncio.run(value)
    return value


class RecordingConsole:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def log(self, level: str, message: str, values: tuple[object, ...] = ()) -> None:
        self.lines.append((level, message))


@pytest.fixture
def console() -> Any:
    recorder = RecordingConsole()
    token = step_console.set(recorder)
    yield recorder
    step_console.reset(token)


def add_title(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "seen": [*state.get("seen", []), state["data"]["title"]]}


async def add_title_later(state: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return add_title(state)


# fn, fn_if, combine


def test_fn_returns_what_its_function_returns() -> None:
    assert fn(lambda state: {**state, "n": 1})({"data": {}}) == {"data": {}, "n": 1}


def test_fn_if_runs_operation_when_condition_is_truthy() -> None:
    op = fn_if(lambda state: state["data"]["go"], fn(lambda state: {**state, "ran": True}))
    assert op({"data": {"go": 1}}) == {"data": {"go": 1}, "ran": True}
    assert op({"data": {"go": 0}}) == {"data": {"go": 0}}


def test_fn_if_accepts_a_plain_value_as_condition() -> None:
    assert fn_if(False, fn(lambda state: {}))({"a": 1}) == {"a": 1}


def test_fn_if_without_operation_is_a_decorator() -> None:
    @fn_if(True)
    def mark(state: dict[str, Any]) -> dict[str, Any]:
        return {**state, "marked": True}

    assert mark({}) == {"marked": True}


def test_combine_threads_state_through_its_operations() -> None:
    op = combine(fn(lambda state: {"hello": 1}), fn(lambda state: {"hello": state["hello"] + 5}))
    assert op({}) == {"hello": 6}


def test_combine_stays_synchronous_when_every_operation_is() -> None:
    result = combine(fn(lambda state: state))({"a": 1})
    assert result == {"a": 1}


def test_combine_awaits_async_operations_anywhere_in_the_chain() -> None:
    async def first(state: dict[str, Any]) -> dict[str, Any]:
        return {"hello": 1}

    async def third(state: dict[str, Any]) -> dict[str, Any]:
        return {"hello": state["hello"] * 10}

    op = combine(first, fn(lambda state: {"hello": state["hello"] + 5}), third)
    assert asyncio.run(op({})) == {"hello": 60}


def test_combine_names_the_operation_that_returned_no_state() -> None:
    op = combine(fn(lambda state: None), fn(lambda state: state))
    with pytest.raises(AdaptorError, match="combine: operation 0 returned NoneType, not a state"):
        op({})


# each


def test_each_runs_operation_for_every_jsonpath_match_in_order() -> None:
    result = each("$.data.store.book[*]", add_title)({"data": STORE})
    assert result["seen"] == TITLES


def test_each_returns_the_state_the_last_item_left() -> None:
    result = each("$.data.store.book[*]", add_title)({"data": STORE, "references": []})
    assert result["data"] == STORE["store"]["book"][-1]
    assert result["index"] == 2
    assert result["references"] == []


def test_each_gives_each_item_its_index() -> None:
    op = each("$.data[*]", fn(lambda s: {**s, "indexes": [*s.get("indexes", []), s["index"]]}))
    assert op({"data": ["a", "b", "c"]})["indexes"] == [0, 1, 2]


def test_each_accepts_a_function_of_state_as_source() -> None:
    result = each(lambda state: state["data"]["store"]["book"], add_title)({"data": STORE})
    assert result["seen"] == TITLES


def test_each_accepts_a_list_as_source() -> None:
    assert each(STORE["store"]["book"], add_title)({})["seen"] == TITLES


def test_each_accepts_a_path_without_root() -> None:
    assert each("data.store.book[*]", add_title)({"data": STORE})["seen"] == TITLES


def test_each_with_no_matches_returns_state_unchanged() -> None:
    assert each("$.data.missing[*]", add_title)({"data": {}}) == {"data": {}}


def test_each_awaits_async_operations_one_item_after_another() -> None:
    result = asyncio.run(each("$.data.store.book[*]", add_title_later)({"data": STORE}))
    assert result["seen"] == TITLES


def test_each_does_not_change_the_state_it_was_given() -> None:
    state = {"data": STORE}
    each("$.data.store.book[*]", add_title)(state)
    assert state == {"data": STORE}


def test_each_without_operation_is_a_decorator() -> None:
    @each("$.data[*]")
    def total(state: dict[str, Any]) -> dict[str, Any]:
        return {**state, "total": state.get("total", 0) + state["data"]}

    assert total({"data": [1, 2, 3]})["total"] == 6


def test_each_rejects_a_source_that_is_not_a_list() -> None:
    with pytest.raises(AdaptorError, match="each: the source gave dict, not a list"):
        each(lambda state: {"a": 1}, add_title)({})


def test_each_rejects_an_invalid_jsonpath_when_made() -> None:
    with pytest.raises(AdaptorError, match=r"Invalid JSONPath '\$\.data\[': "):
        each("$.data[", add_title)


# map_ and as_


def test_map_sets_data_to_the_callback_results() -> None:
    op = map_("$.data.store.book[*]", lambda book, index, state: {"id": index, "t": book["title"]})
    result = op({"data": STORE, "keep": 1})
    assert result == {
        "data": [{"id": 0, "t": "Sayings"}, {"id": 1, "t": "Sword"}, {"id": 2, "t": "Moby"}],
        "keep": 1,
    }


def test_map_passes_the_state_it_was_given_to_the_callback() -> None:
    op = map_([1, 2], lambda item, index, state: f"{state['prefix']}{item}")
    assert op({"prefix": "book-"})["data"] == ["book-1", "book-2"]


def test_map_awaits_async_callbacks() -> None:
    async def double(item: int, index: int, state: dict[str, Any]) -> int:
        await asyncio.sleep(0)
        return item * 2

    assert asyncio.run(map_(lambda state: state["data"], double)({"data": [1, 2, 3]}))["data"] == [
        2,
        4,
        6,
    ]


def test_as_puts_the_operation_data_under_a_key_and_keeps_data() -> None:
    op = as_("grouped", group([{"x": "a"}, {"x": "b"}, {"x": "b"}], "x"))
    assert op({"data": {}, "references": []}) == {
        "data": {},
        "references": [],
        "grouped": {"a": [{"x": "a"}], "b": [{"x": "b"}, {"x": "b"}]},
    }


def test_as_keeps_other_keys_the_operation_set() -> None:
    op = as_(lambda state: state["key"], fn(lambda s: {**s, "data": [1], "response": 200}))
    result = op({"data": {}, "key": "comments"})
    assert result == {"data": {}, "key": "comments", "comments": [1], "response": 200}


def test_as_awaits_an_async_operation() -> None:
    async def fetch(state: dict[str, Any]) -> dict[str, Any]:
        return {**state, "data": "fetched"}

    assert asyncio.run(as_("result", fetch)({"data": 1})) == {"data": 1, "result": "fetched"}


# JSONPath readers


def test_source_value_gives_the_first_match() -> None:
    assert source_value("$.store.bicycle.color")(STORE) == "red"
    assert source_value("$.store.book[*].title")(STORE) == "Sayings"


def test_source_value_gives_none_when_nothing_matches() -> None:
    assert source_value("$.store.car")(STORE) is None


def test_source_gives_every_match() -> None:
    assert source("$.store.bicycle.color")(STORE) == ["red"]
    assert source("$..title")(STORE) == TITLES


def test_source_supports_rfc9535_filters_and_functions() -> None:
    state = {"data": [{"n": "ab", "t": [1]}, {"n": "cd", "t": []}, {"n": "ce", "t": [2, 3]}]}
    assert source("$.data[?length(@.t) > 0].n")(state) == ["ab", "ce"]
    assert source('$.data[?match(@.n, "c.")].n')(state) == ["cd", "ce"]
    assert source('$.data[?search(@.n, "e")].n')(state) == ["ce"]
    assert source("$.data[-1].n")(state) == ["ce"]
    assert source("$.data[0:2].n")(state) == ["ab", "cd"]


def test_source_matches_keys_that_need_quoting() -> None:
    assert source("$['a key']['x.y']")({"a key": {"x.y": 1}}) == [1]


def test_data_path_prefixes_data() -> None:
    assert data_path("data.hello") == "$.data.data.hello"
    assert data_path("$.data.hello") == "$.data.data.hello"
    assert data_path("[0].foo") == "$.data[0].foo"


def test_data_value_reads_below_data() -> None:
    assert data_value("store.bicycle.color")({"data": STORE}) == "red"
    assert data_value("[1]")({"data": ["a", "b"]}) == "b"


def test_last_reference_value_reads_the_most_recent_reference() -> None:
    state = compose_next_state(compose_next_state({"data": {"id": 1}}, {"id": 2}), {"id": 3})
    assert state["references"] == [{"id": 1}, {"id": 2}]
    assert last_reference_value("id")(state) == 2


def test_last_reference_value_is_none_without_references() -> None:
    assert last_reference_value("id")({"references": []}) is None


def test_merge_adds_resolved_fields_to_every_item() -> None:
    result = merge(
        "$.store.book[*]",
        fields(
            field("color", source_value("$.store.bicycle.color")),
            field("price", source_value("$.store.bicycle.price")),
        ),
    )(STORE)
    assert [(item["title"], item["color"], item["price"]) for item in result] == [
        ("Sayings", "red", 19.95),
        ("Sword", "red", 19.95),
        ("Moby", "red", 19.95),
    ]


def test_join_adds_a_value_unless_the_item_has_the_key() -> None:
    state = {"items": [{"a": 1}, {"a": 2, "color": "blue"}], "color": "red"}
    assert join("$.items[*]", "$.color", "color")(state) == [
        {"color": "red", "a": 1},
        {"color": "blue", "a": 2},
    ]


# values


def test_field_and_fields_build_a_dict() -> None:
    assert field("a", 1) == ("a", 1)
    assert fields(field("a", 1), field("b", 2)) == {"a": 1, "b": 2}


def test_chunk_cuts_a_list_into_lists_of_at_most_size() -> None:
    assert chunk([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert chunk([], 3) == []


def test_chunk_rejects_a_size_below_one() -> None:
    with pytest.raises(AdaptorError, match="chunk size must be at least 1, got 0"):
        chunk([1], 0)


def test_to_array_wraps_anything_but_a_list() -> None:
    assert to_array([1, 2, 3]) == [1, 2, 3]
    assert to_array({"a": 1}) == [{"a": 1}]
    assert to_array("a") == ["a"]
    assert to_array((1, 2)) == [1, 2]


def test_split_keys_splits_an_object_on_keys() -> None:
    assert split_keys({"a": 1, "b": 2, "c": 3}, ["b"]) == ({"a": 1, "c": 3}, {"b": 2})
    assert split_keys({}, ["b"]) == ({}, {})


def test_array_to_string_joins_items() -> None:
    assert array_to_string([1, 2, 3], ", ") == "1, 2, 3"
    assert array_to_string([1, "b", True]) == "1,b,true"


def test_human_proper_spaces_and_capitalises() -> None:
    assert human_proper("first_name-given") == "First Name Given"
    assert human_proper("mIXED case") == "Mixed Case"
    assert human_proper(42) == 42


def test_scrub_emojis_replaces_each_emoji_character() -> None:
    assert (
        scrub_emojis("This is a dove🕊️⭐_29 Jul 2021")
        == "This is a dove\ufffd\ufffd\ufffd_29 Jul 2021"
    )
    assert scrub_emojis("This is a star⭐_29") == "This is a star\ufffd_29"
    assert scrub_emojis("plain text") == "plain text"
    assert scrub_emojis(None) is None


def test_scrub_emojis_warns_when_removing(console: RecordingConsole) -> None:
    assert scrub_emojis("dove🕊️_29", "") == "dove_29"
    assert console.lines[0][0] == "warn"


def test_group_groups_items_by_key_path() -> None:
    items = [{"x": "a", "y": {"z": "p"}}, {"x": "b", "y": {"z": "p"}}, {"x": "c", "y": {}}]
    assert group(items, "x")({})["data"] == {
        "a": [items[0]],
        "b": [items[1]],
        "c": [items[2]],
    }
    assert group(items, "y.z")({})["data"] == {"p": [items[0], items[1]]}
    assert group(items, "y.q")({})["data"] == {}


def test_group_resolves_lazy_items_and_key_path_and_calls_back() -> None:
    state = {"data": [{"k": 1}, {"k": 2}], "path": "k"}
    op = group(lambda s: s["data"], lambda s: s["path"], lambda s: {**s, "called": True})
    assert op(state) == {"data": {"1": [{"k": 1}], "2": [{"k": 2}]}, "path": "k", "called": True}


# parse_csv


CSV = "a,b,c\n1,2,3\n4,5,6\n7,8,9"
ROWS = [
    {"a": "1", "b": "2", "c": "3"},
    {"a": "4", "b": "5", "c": "6"},
    {"a": "7", "b": "8", "c": "9"},
]


def test_parse_csv_puts_rows_in_data_and_old_data_in_references() -> None:
    result = settle(parse_csv(CSV)({"data": {"before": 1}, "references": []}))
    assert result == {"data": ROWS, "references": [{"before": 1}]}


def test_parse_csv_composes_each_chunk_in_turn() -> None:
    result = settle(parse_csv(CSV, chunk_size=2)({"data": {"before": 1}, "references": []}))
    assert result == {"data": ROWS[2:], "references": [{"before": 1}, ROWS[:2]]}


def test_parse_csv_hands_chunks_to_the_callback() -> None:
    def collect(state: dict[str, Any], rows: list[Any]) -> dict[str, Any]:
        return {**state, "chunks": [*state["chunks"], rows]}

    result = settle(parse_csv(CSV, chunk_size=2, callback=collect)({"chunks": []}))
    assert result == {"chunks": [ROWS[:2], ROWS[2:]]}


def test_parse_csv_awaits_an_async_callback() -> None:
    async def add(state: dict[str, Any], rows: list[Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {**state, "data": state["data"] + sum(int(row["b"]) for row in rows)}

    assert settle(parse_csv(CSV, chunk_size=1, callback=add)({"data": 0})) == {"data": 15}


def test_parse_csv_reads_a_file_like_object_lazily() -> None:
    text = io.StringIO("\ufeffa;b\n x ; 'y;z' \n\n3;4\n")
    result = settle(parse_csv(text, delimiter=";", quote="'")({}))
    assert result["data"] == [{"a": "x", "b": "y;z"}, {"a": "3", "b": "4"}]


def test_parse_csv_reads_binary_lines_and_lazy_text() -> None:
    binary = io.BytesIO("name\nJosé\n".encode())
    assert settle(parse_csv(binary)({}))["data"] == [{"name": "José"}]
    assert settle(parse_csv(lambda s: s["body"])({"body": "n\n1"}))["data"] == [{"n": "1"}]


def test_parse_csv_rejects_what_is_not_csv() -> None:
    with pytest.raises(
        AdaptorError, match="parse_csv: expected CSV text or a file-like object, got dict"
    ):
        settle(parse_csv({"a": 1})({}))


def test_parse_csv_keeps_quoted_newlines_and_doubled_quotes() -> None:
    result = settle(parse_csv('a,b\n"line1\nline2","say ""hi"""\n')({}))
    assert result["data"] == [{"a": "line1\nline2", "b": 'say "hi"'}]


def test_parse_csv_options_control_columns_trim_and_empty_lines() -> None:
    assert settle(parse_csv("1, 2\n3,4", columns=["x", "y"], trim=False)({}))["data"] == [
        {"x": "1", "y": " 2"},
        {"x": "3", "y": "4"},
    ]
    assert settle(parse_csv("1,2\n\n3,4", columns=False)({}))["data"] == [["1", "2"], ["3", "4"]]
    with pytest.raises(AdaptorError, match="expected 2 columns, got 0 on line 2"):
        settle(parse_csv("a,b\n\n3,4", skip_empty_lines=False)({}))


def test_parse_csv_rejects_a_row_of_the_wrong_length() -> None:
    with pytest.raises(AdaptorError) as caught:
        settle(parse_csv("a,b,c\n1,2,3,8\n4,5,6")({}))
    assert caught.value.message == "Invalid record length: expected 3 columns, got 4 on line 2"
    assert caught.value.details == {"line": 2, "expected": 3, "got": 4}


def test_parse_csv_rejects_a_chunk_size_below_one() -> None:
    with pytest.raises(AdaptorError, match="chunk_size must be at least 1, got 0"):
        parse_csv(CSV, chunk_size=0)


def test_parse_csv_lets_callback_errors_through() -> None:
    def broken(state: dict[str, Any], rows: list[Any]) -> dict[str, Any]:
        raise ValueError("bubble up errors from the callback")

    with pytest.raises(ValueError, match="bubble up errors from the callback"):
        settle(parse_csv(CSV, chunk_size=2, callback=broken)({}))


# cursor


def test_cursor_sets_a_value_under_the_key(console: RecordingConsole) -> None:
    assert cursor(1234)({}) == {"cursor": 1234}
    assert cursor(44, key="page")({"a": 1}) == {"a": 1, "page": 44}
    assert console.lines == [("info", "Setting cursor to: 1234"), ("info", "Setting page to: 44")]


def test_cursor_uses_the_default_when_value_is_none() -> None:
    assert cursor(lambda state: state.get("cursor"), default=33)({}) == {"cursor": 33}
    assert cursor(None)({"cursor": "old"}) == {"cursor": None}


def test_cursor_keeps_strings_that_name_no_moment() -> None:
    assert cursor("rock the casbah")({}) == {"cursor": "rock the casbah"}


@pytest.fixture
def kolkata_time(monkeypatch: pytest.MonkeyPatch) -> Any:
    # A zone far from UTC (and without DST) makes "local midnight" visible in UTC.
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_cursor_turns_today_and_days_ago_into_local_midnight_in_utc(kolkata_time: None) -> None:
    for word, days in (("today", 0), ("yesterday", 1), ("3 days ago", 3), ("1 day ago", 1)):
        stored = cursor(word)({})["cursor"]
        assert stored.endswith("T18:30:00.000Z"), word
        local = datetime.fromisoformat(stored).astimezone()
        assert (local.hour, local.minute) == (0, 0)
        assert (datetime.now().astimezone().date() - local.date()).days == days


def test_cursor_turns_now_and_hours_ago_into_utc_timestamps() -> None:
    before = datetime.now(UTC)
    now = datetime.fromisoformat(cursor("now")({})["cursor"])
    two_hours_ago = datetime.fromisoformat(cursor("2 hours ago")({})["cursor"])
    assert abs((now - before).total_seconds()) < 60
    assert abs((now - two_hours_ago).total_seconds() - 7200) < 60


def test_cursor_applies_a_formatter() -> None:
    assert cursor("abc", formatter=str.upper)({}) == {"cursor": "ABC"}
    assert cursor("today", formatter=lambda moment: moment.hour)({}) == {"cursor": 0}
    assert cursor(3, formatter=lambda page: {"page": page})({}) == {"cursor": {"page": 3}}


# assert_, validate


def test_assert_passes_state_when_truthy() -> None:
    assert assert_(lambda state: state["ok"], "not ok")({"ok": True}) == {"ok": True}


def test_assert_fails_with_the_message() -> None:
    with pytest.raises(AdaptorError, match=r"^a is not equal to b$"):
        assert_("a" == "b", "a is not equal to b")({})
    with pytest.raises(AdaptorError, match=r"^this is an error$"):
        assert_(False, lambda state: state["msg"])({"msg": "this is an error"})


def test_assert_falls_back_to_a_generic_message() -> None:
    with pytest.raises(AdaptorError, match=r"^assertion statement failed with False$"):
        assert_(lambda state: False)({})


PERSON = {
    "$schema": "http://json-schema.org/draft-07/schema",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
}


def test_validate_reads_schema_and_data_from_state_by_default() -> None:
    result = validate()({"schema": PERSON, "data": {"name": "Scott", "age": 30}})
    assert result["validation_errors"] == []


def test_validate_records_each_problem_with_its_path() -> None:
    data = {"name": 7, "age": "unknown"}
    result = validate()({"schema": PERSON, "data": data})
    assert result["validation_errors"] == [
        {
            "data": data,
            "errors": [
                {
                    "message": "'unknown' is not of type 'integer'",
                    "path": "/age",
                    "keyword": "type",
                },
                {"message": "7 is not of type 'string'", "path": "/name", "keyword": "type"},
            ],
        }
    ]


def test_validate_accepts_paths_values_and_functions() -> None:
    bad = {"age": -1}
    assert len(validate("s", "d")({"s": PERSON, "d": bad})["validation_errors"]) == 1
    assert len(validate(PERSON, bad)({})["validation_errors"]) == 1
    assert len(validate(lambda s: PERSON, lambda s: bad)({})["validation_errors"]) == 1


def test_validate_composes_with_each() -> None:
    items = [{"age": "x"}, {"age": 3}, {"name": ["a"]}]
    result = each("$.data[*]", validate(PERSON))({"data": items})
    assert [entry["data"] for entry in result["validation_errors"]] == [items[0], items[2]]


def test_validate_picks_the_draft_from_the_schema() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "prefixItems": [{"type": "integer"}],
    }
    assert len(validate(schema, ["x"])({})["validation_errors"]) == 1


def test_validate_rejects_a_missing_or_invalid_schema() -> None:
    with pytest.raises(AdaptorError, match="validate: no schema found at 'schema'"):
        validate()({"data": {}})
    with pytest.raises(AdaptorError, match="validate: invalid schema: "):
        validate({"type": 12}, {})({})


def test_validate_follows_references_within_the_schema_only(tmp_path: Path) -> None:
    local = {"$defs": {"age": {"type": "integer"}}, "properties": {"age": {"$ref": "#/$defs/age"}}}
    assert len(validate(local, {"age": "x"})({})["validation_errors"]) == 1
    secret = tmp_path / "secret.json"
    secret.write_text('{"api_key": "TOPSECRET-123"}')
    with socket.socket() as listener:  # a server that would see a fetch
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        for ref in (f"{secret.as_uri()}#/nope", secret.as_uri(), f"http://127.0.0.1:{port}/s"):
            with pytest.raises(AdaptorError) as raised:
                validate({"$ref": ref}, {})({})
            assert str(raised.value) == f"validate: the schema's $ref {ref!r} cannot be resolved"
            assert "TOPSECRET" not in repr(raised.value.to_dict())
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected


# log


def test_log_writes_resolved_arguments_to_the_step_console(console: RecordingConsole) -> None:
    state = {"x": "a", "y": {"z": "b"}, "u": None}
    assert log("test", lambda s: s["x"], lambda s: f"test {s['y']['z']}", S_Y)(state) is state
    assert log(lambda s: s["u"])(state) is state
    assert console.lines == [("info", 'test a test b {"z":"b"}'), ("info", "null")]


def S_Y(state: dict[str, Any]) -> Any:
    return state["y"]


def test_debug_logs_at_debug_level(console: RecordingConsole) -> None:
    debug("raw", [1, 2])({})
    assert console.lines == [("debug", "raw [1,2]")]


def test_log_falls_back_to_the_job_logger_outside_a_step(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="statefn.job"):
        log("outside", 1)({})
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("statefn.job", "outside 1")]


# Through the runtime: job source compiled, common in scope, logs to the job's log


def run_job(source: str, state: dict[str, Any]) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
    import statefn

    events: list[tuple[str, dict[str, Any]]] = []
    result = statefn.run(
        source, state, on_event=lambda name, payload: events.append((name, payload))
    )
    return result, events


def log_messages(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str]]:
    return [(payload["level"], payload["message"]) for name, payload in events if name == "log"]


def test_job_threads_state_through_each_with_lazy_references() -> None:
    source = (
        "each('$.data.items[*]', fn(lambda state: {**state, 'total': state.get('total', 0) + state['data']}))\n"
        "log('total', S.total)\n"
    )
    result, events = run_job(source, {"data": {"items": [1, 2, 3]}})
    assert result["total"] == 6
    assert result["data"] == 3
    assert log_messages(events) == [("info", "total 6")]


def test_job_uses_each_as_a_decorator() -> None:
    source = (
        "@each('$.data[*]')\n"
        "def count(state):\n"
        "    return {**state, 'seen': state.get('seen', []) + [state['data']['id']]}\n"
    )
    result, _ = run_job(source, {"data": [{"id": "a"}, {"id": "b"}]})
    assert result["seen"] == ["a", "b"]


def test_job_parses_csv_in_chunks_with_a_callback() -> None:
    source = (
        "parse_csv(S.data, chunk_size=2, callback=lambda state, rows: "
        "{**state, 'sizes': state.get('sizes', []) + [len(rows)]})\n"
    )
    result, _ = run_job(source, {"data": CSV})
    assert result["sizes"] == [2, 1]


def test_failed_assert_is_recorded_as_an_adaptor_error() -> None:
    result, _ = run_job("assert_(S.data.ok, 'not ok')\n", {"data": {"ok": False}})
    record = result["errors"]["job-1"]
    assert (record["name"], record["severity"], record["message"]) == (
        "AdaptorError",
        "fail",
        "not ok",
    )
