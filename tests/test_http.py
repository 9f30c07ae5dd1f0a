"""The http adaptor against a real HTTP server on 127.0.0.1 (no mocked transport)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import email.utils
import inspect
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import statefn
from statefn.adaptor import AdaptorError
from statefn.adaptors import http
from statefn.adaptors.http._retry import RetryPolicy, parse_retry_after

PASSWORD = "s3cret-pa55"
TOKEN = "tok-abcdef-123456"


@pytest.fixture(scope="module")
def running_server() -> Iterator[HTTPServer]:
    # One server for the module: stopping one takes half a second.
    instance = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def server(running_server: HTTPServer) -> Iterator[HTTPServer]:
    yield running_server
    running_server.clear()


def state_for(server: HTTPServer, **configuration: Any) -> dict[str, Any]:
    return {
        "configuration": {"base_url": server.url_for(""), **configuration},
        "data": {"before": True},
    }


def run(operation: Any, state: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = asyncio.run(operation(state))
    return result


def failure(operation: Any, state: dict[str, Any]) -> AdaptorError:
    with pytest.raises(AdaptorError) as caught:
        run(operation, state)
    return caught.value


def requests(server: HTTPServer) -> list[Request]:
    return [request for request, _ in server.log]


# --- results -----------------------------------------------------------------------------


def test_get_puts_parsed_json_in_data_and_old_data_in_references(server: HTTPServer) -> None:
    server.expect_request("/patients").respond_with_json([{"id": 1}])
    state = run(http.get("/patients"), state_for(server))
    assert state["data"] == [{"id": 1}]
    assert state["references"] == [{"before": True}]


def test_response_record_has_status_headers_url_and_duration(server: HTTPServer) -> None:
    server.expect_request("/x").respond_with_json({}, status=201, headers={"X-Id": "7"})
    response = run(http.post("/x", body={}), state_for(server))["response"]
    assert set(response) == {"status", "headers", "url", "duration_ms"}
    assert response["status"] == 201
    assert response["headers"]["x-id"] == "7"
    assert response["url"] == server.url_for("/x")
    assert isinstance(response["duration_ms"], int)


def test_each_method_sends_its_verb(server: HTTPServer) -> None:
    server.expect_request("/r").respond_with_data("")
    state = state_for(server)
    for factory in (http.get, http.post, http.put, http.patch, http.delete, http.head):
        run(factory("/r"), state)
    run(http.request("options", "/r"), state)
    assert [r.method for r in requests(server)] == [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
    ]  # fmt: skip


def test_head_leaves_data_none_and_reports_headers(server: HTTPServer) -> None:
    server.expect_request("/file", method="HEAD").respond_with_data(
        "", headers={"X-Rows": "42", "Content-Type": "text/csv"}
    )
    state = run(http.head("/file"), state_for(server))
    assert state["data"] is None
    assert state["response"]["headers"]["x-rows"] == "42"


# --- URLs ----------------------------------------------------------------------------------


def test_path_is_joined_to_base_url_keeping_its_path(server: HTTPServer) -> None:
    server.expect_request("/api/v1/patients").respond_with_json({"ok": True})
    state = state_for(server)
    state["configuration"]["base_url"] = server.url_for("/api/v1")
    assert run(http.get("patients"), state)["data"] == {"ok": True}


def test_absolute_url_is_used_as_is(server: HTTPServer) -> None:
    server.expect_request("/elsewhere").respond_with_json({"ok": True})
    state: dict[str, Any] = {"configuration": {}, "data": {}}
    assert run(http.get(server.url_for("/elsewhere")), state)["data"] == {"ok": True}


def test_relative_path_without_base_url_is_an_error_with_a_fix() -> None:
    error = failure(http.get("/patients"), {"configuration": {}})
    assert error.message == "The path '/patients' is relative and the configuration has no base_url"
    assert error.fix is not None and "base_url" in error.fix


def test_credentials_are_not_sent_to_another_origin(server: HTTPServer) -> None:
    server.expect_request("/other").respond_with_json({})
    state = state_for(server, access_token=TOKEN, headers={"X-Api-Key": "k-123"})
    other_origin = f"http://localhost:{server.port}/other"
    run(http.get(other_origin), state)
    [sent] = requests(server)
    assert "Authorization" not in sent.headers
    assert "X-Api-Key" not in sent.headers


# --- auth and headers ----------------------------------------------------------------------


def test_username_and_password_send_basic_auth(server: HTTPServer) -> None:
    server.expect_request("/me").respond_with_json({})
    run(http.get("/me"), state_for(server, username="ada", password=PASSWORD))
    expected = "Basic " + base64.b64encode(f"ada:{PASSWORD}".encode()).decode()
    assert requests(server)[0].headers["Authorization"] == expected


def test_access_token_sends_bearer_auth_over_basic(server: HTTPServer) -> None:
    server.expect_request("/me").respond_with_json({})
    state = state_for(server, username="ada", password=PASSWORD, access_token=TOKEN)
    run(http.get("/me"), state)
    assert requests(server)[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_option_headers_override_configuration_headers_and_auth(server: HTTPServer) -> None:
    server.expect_request("/h").respond_with_json({})
    state = state_for(server, access_token=TOKEN, headers={"X-Tenant": "a", "X-Keep": "1"})
    run(http.get("/h", headers={"x-tenant": "b", "Authorization": "Custom xyz"}), state)
    sent = requests(server)[0].headers
    assert (sent["X-Tenant"], sent["X-Keep"], sent["Authorization"]) == ("b", "1", "Custom xyz")


# --- request encoding ----------------------------------------------------------------------


def test_query_repeats_lists_drops_none_and_overrides_the_paths_query(server: HTTPServer) -> None:
    server.expect_request("/q").respond_with_json({})
    query = {"status": ["a", "b"], "skip": None, "flag": True, "page": 2}
    run(http.get("/q?page=1&keep=yes", query=query), state_for(server))
    args = requests(server)[0].args
    assert args.getlist("status") == ["a", "b"]
    assert args.to_dict() == {"page": "2", "keep": "yes", "status": "a", "flag": "true"}


def test_body_is_sent_as_json(server: HTTPServer) -> None:
    server.expect_request(
        "/p", method="POST", json={"name": "Ada", "tags": [1, 2]}
    ).respond_with_json({"id": 9})
    state = run(http.post("/p", body={"name": "Ada", "tags": [1, 2]}), state_for(server))
    assert state["data"] == {"id": 9}
    assert requests(server)[0].headers["Content-Type"] == "application/json"


def test_string_body_is_sent_as_it_is_with_the_given_content_type(server: HTTPServer) -> None:
    server.expect_request("/xml", data="<a/>").respond_with_data("ok")
    run(
        http.post("/xml", body="<a/>", headers={"Content-Type": "application/xml"}),
        state_for(server),
    )
    assert requests(server)[0].headers["Content-Type"] == "application/xml"


def test_form_is_url_encoded(server: HTTPServer) -> None:
    server.expect_request("/f").respond_with_json({})
    run(http.post("/f", form={"a": "1", "b": ["x", "y"], "meta": {"k": 1}}), state_for(server))
    sent = requests(server)[0]
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent.form.getlist("b") == ["x", "y"]
    assert (sent.form["a"], sent.form["meta"]) == ("1", '{"k":1}')


def test_files_are_sent_as_multipart_with_form_fields(server: HTTPServer) -> None:
    server.expect_request("/upload").respond_with_json({})
    files = {
        "report": {"filename": "r.csv", "content": "a,b\n1,2\n", "content_type": "text/csv"},
        "image": {"filename": "i.bin", "base64": base64.b64encode(b"\x00\x01").decode()},
    }
    run(http.post("/upload", form={"title": "T"}, files=files), state_for(server))
    sent = requests(server)[0]
    assert sent.headers["Content-Type"].startswith("multipart/form-data")
    assert sent.form["title"] == "T"
    assert sent.files["report"].filename == "r.csv"
    assert sent.files["report"].read() == b"a,b\n1,2\n"
    assert sent.files["image"].read() == b"\x00\x01"


def test_body_and_form_together_are_refused(server: HTTPServer) -> None:
    error = failure(http.post("/p", body={}, form={"a": 1}), state_for(server))
    assert error.message == "Give either body or form/files, not both"


# --- lazy arguments ------------------------------------------------------------------------


def test_every_argument_may_be_a_function_of_state_nested_too(server: HTTPServer) -> None:
    server.expect_request("/patients/42", method="PUT").respond_with_json({})
    state = state_for(server)
    state["data"] = {"id": 42, "name": "Ada", "token": "t-1"}
    operation = http.put(
        lambda s: f"/patients/{s['data']['id']}",
        query={"by": lambda s: s["data"]["name"]},
        headers=lambda s: {"X-Token": s["data"]["token"]},
        body={"name": lambda s: s["data"]["name"], "ids": [lambda s: s["data"]["id"]]},
        timeout=lambda s: 5000,
    )
    run(operation, state)
    sent = requests(server)[0]
    assert sent.args["by"] == "Ada"
    assert sent.headers["X-Token"] == "t-1"
    assert json.loads(sent.data) == {"name": "Ada", "ids": [42]}


# --- redirects ------------------------------------------------------------------------------


def redirect_to(location: str, status: int = 302) -> Response:
    return Response("", status=status, headers={"Location": location})


def test_redirects_are_followed_and_the_final_url_reported(server: HTTPServer) -> None:
    server.expect_request("/old").respond_with_response(redirect_to("/new"))
    server.expect_request("/new").respond_with_json({"moved": True})
    state = run(http.get("/old"), state_for(server))
    assert state["data"] == {"moved": True}
    assert state["response"]["url"] == server.url_for("/new")


def test_credentials_do_not_follow_a_redirect_to_another_origin(server: HTTPServer) -> None:
    elsewhere = f"http://localhost:{server.port}/landing"
    server.expect_request("/home").respond_with_response(redirect_to("/away"))
    server.expect_request("/away").respond_with_response(redirect_to(elsewhere))
    server.expect_request("/landing").respond_with_json({})
    state = state_for(server, access_token=TOKEN, headers={"X-Api-Key": "k-123"})
    run(http.get("/home"), state)
    _, away, landing = requests(server)
    assert away.headers["X-Api-Key"] == "k-123" and "Authorization" in away.headers
    assert "X-Api-Key" not in landing.headers and "Authorization" not in landing.headers


def test_max_redirects_zero_returns_the_redirect_response(server: HTTPServer) -> None:
    server.expect_request("/old").respond_with_response(redirect_to("/new"))
    state = run(http.get("/old", max_redirects=0), state_for(server))
    assert state["response"]["status"] == 302
    assert state["response"]["headers"]["location"] == "/new"


def test_more_redirects_than_max_redirects_is_an_error(server: HTTPServer) -> None:
    for hop in range(3):
        server.expect_request(f"/hop{hop}").respond_with_response(redirect_to(f"/hop{hop + 1}"))
    error = failure(http.get("/hop0", max_redirects=2), state_for(server))
    assert error.message == f"GET {server.url_for('/hop0')} was redirected more than 2 times"


# --- error statuses -------------------------------------------------------------------------


def test_error_status_raises_with_status_method_url_and_bounded_body(server: HTTPServer) -> None:
    server.expect_request("/missing").respond_with_data("x" * 5000, status=404)
    error = failure(http.delete("/missing"), state_for(server))
    url = server.url_for("/missing")
    assert error.message == f"DELETE {url} returned 404 NOT FOUND"
    assert error.details is not None
    assert (error.details["status"], error.details["method"], error.details["url"]) == (
        404, "DELETE", url,
    )  # fmt: skip
    assert error.details["body"] == "x" * 1000


def test_error_on_status_false_returns_the_error_response(server: HTTPServer) -> None:
    server.expect_request("/bad").respond_with_json({"error": "invalid"}, status=422)
    state = run(http.post("/bad", body={}, error_on_status=False), state_for(server))
    assert state["response"]["status"] == 422
    assert state["data"] == {"error": "invalid"}


def test_error_record_holds_no_credential(server: HTTPServer) -> None:
    server.expect_request("/secret").respond_with_data("denied", status=401)
    for configuration in (
        {"username": "ada", "password": PASSWORD},
        {"access_token": TOKEN},
    ):
        record = json.dumps(
            failure(http.get("/secret"), state_for(server, **configuration)).to_dict()
        )
        basic = base64.b64encode(f"ada:{PASSWORD}".encode()).decode()
        assert PASSWORD not in record and basic not in record and TOKEN not in record
        assert "401" in record


def test_user_and_password_in_a_url_stay_out_of_the_error(server: HTTPServer) -> None:
    server.expect_request("/secret").respond_with_data("denied", status=403)
    url = f"http://ada:{PASSWORD}@127.0.0.1:{server.port}/secret"
    error = failure(http.get(url), {"configuration": {}})
    assert PASSWORD not in json.dumps(error.to_dict())
    assert error.details is not None and error.details["url"] == server.url_for("/secret")


# --- retries ---------------------------------------------------------------------------------

FAST = {"count": 3, "backoff_ms": 1, "factor": 1}


def test_retries_after_503_until_success(server: HTTPServer) -> None:
    server.expect_ordered_request("/flaky").respond_with_data("busy", status=503)
    server.expect_ordered_request("/flaky").respond_with_data("slow down", status=429)
    server.expect_ordered_request("/flaky").respond_with_json({"ok": True})
    state = run(http.get("/flaky", retries=FAST), state_for(server))
    assert state["data"] == {"ok": True}
    assert len(requests(server)) == 3


def test_exhausted_retries_raise_the_last_status(server: HTTPServer) -> None:
    server.expect_request("/down").respond_with_data("down", status=502)
    error = failure(http.get("/down", retries={**FAST, "count": 2}), state_for(server))
    assert error.details is not None and error.details["status"] == 502
    assert len(requests(server)) == 3


def test_client_errors_other_than_429_are_not_retried(server: HTTPServer) -> None:
    server.expect_request("/nope").respond_with_data("bad", status=400)
    failure(http.get("/nope", retries=FAST), state_for(server))
    assert len(requests(server)) == 1


def test_retry_after_in_seconds_is_waited_for(server: HTTPServer) -> None:
    arrivals: list[float] = []

    def limited(request: Request) -> Response:
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            return Response("wait", status=429, headers={"Retry-After": "1"})
        return Response("{}", content_type="application/json")

    server.expect_request("/limited").respond_with_handler(limited)
    run(http.get("/limited", retries=FAST), state_for(server))
    assert arrivals[1] - arrivals[0] >= 0.9


def test_retry_after_longer_than_max_wait_is_not_waited_for(server: HTTPServer) -> None:
    server.expect_request("/later").respond_with_data(
        "later", status=429, headers={"Retry-After": "3600"}
    )
    error = failure(http.get("/later", retries=FAST), state_for(server))
    assert error.details is not None and error.details["status"] == 429
    assert len(requests(server)) == 1


def test_retry_after_http_date_gives_seconds_from_now() -> None:
    now = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)
    later = email.utils.format_datetime(now + datetime.timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now) == 30
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("120") == 120
    assert parse_retry_after("soon") is None


def test_backoff_grows_by_factor_and_is_capped() -> None:
    policy = RetryPolicy(count=4, backoff_ms=100, factor=3, max_wait_ms=500)
    assert [policy.wait_seconds(n) for n in (1, 2, 3, 4, 5)] == [0.1, 0.3, 0.5, 0.5, None]


def test_bad_retries_option_is_an_error_with_a_fix(server: HTTPServer) -> None:
    error = failure(http.get("/x", retries={"times": 3}), state_for(server))
    assert error.message == "Unknown retries keys: times"
    assert error.fix is not None and '"count": 3' in error.fix


# --- network errors ---------------------------------------------------------------------------


def test_timeout_is_an_error_naming_the_limit(server: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("late")

    server.expect_request("/slow").respond_with_handler(slow)
    error = failure(http.get("/slow", timeout=100), state_for(server))
    # Let the server finish the abandoned request so it is not logged in the next test.
    deadline = time.monotonic() + 5
    while not server.log and time.monotonic() < deadline:
        time.sleep(0.01)
    assert error.message == f"GET {server.url_for('/slow')} timed out after 100 ms"
    assert error.fix is not None and "timeout" in error.fix


def test_refused_connection_is_an_error_with_a_fix() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = failure(http.get(f"http://127.0.0.1:{port}/x"), {"configuration": {}})
    assert error.message.startswith(f"Could not connect to http://127.0.0.1:{port}: ")
    assert error.fix == "Check that the server is running and that the URL (base_url) is right."
    assert error.details == {"method": "GET", "url": f"http://127.0.0.1:{port}/x", "attempts": 1}


def test_missing_tls_ca_file_is_an_error(server: HTTPServer) -> None:
    state = state_for(server, tls={"verify": "/nonexistent/ca.pem"})
    error = failure(http.get("/x"), state)
    assert error.message.startswith("Could not load the TLS files named in configuration tls")


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "payload", "expected"),
    [
        ("application/json", b'{"a": 1}', {"a": 1}),
        ("application/fhir+json; charset=utf-8", b'{"a": 1}', {"a": 1}),
        ("text/plain; charset=utf-8", b"hello", "hello"),
        ("application/xml", b"<a/>", "<a/>"),
        ("image/png", b"\x89PNG", base64.b64encode(b"\x89PNG").decode()),
        ("application/json", b"", None),
    ],
)
def test_default_parsing_follows_the_content_type(
    server: HTTPServer, content_type: str, payload: bytes, expected: Any
) -> None:
    server.expect_request("/body").respond_with_data(payload, content_type=content_type)
    assert run(http.get("/body"), state_for(server))["data"] == expected


@pytest.mark.parametrize(
    ("parse_as", "expected"),
    [("text", '{"a": 1}'), ("json", {"a": 1}), ("base64", base64.b64encode(b'{"a": 1}').decode())],
)
def test_parse_as_overrides_the_content_type(
    server: HTTPServer, parse_as: str, expected: Any
) -> None:
    server.expect_request("/body").respond_with_data(b'{"a": 1}', content_type="text/plain")
    assert run(http.get("/body", parse_as=parse_as), state_for(server))["data"] == expected


def test_invalid_json_is_an_error_suggesting_text(server: HTTPServer) -> None:
    server.expect_request("/broken").respond_with_data("{nope", content_type="application/json")
    error = failure(http.get("/broken"), state_for(server))
    assert error.message.startswith("Could not parse the response body as JSON: ")
    assert error.fix == 'Use parse_as="text" to get the body as a string.'


def test_unknown_parse_as_is_an_error(server: HTTPServer) -> None:
    error = failure(http.get("/x", parse_as="xml"), state_for(server))
    assert error.message == "Unknown parse_as 'xml'"


def test_stream_hands_a_body_a_later_operation_reads(server: HTTPServer) -> None:
    server.expect_request("/big").respond_with_data(b"0123456789" * 1000)

    async def job(state: dict[str, Any]) -> tuple[bytes, bool]:
        streamed = await http.get("/big", parse_as="stream")(state)
        stream = streamed["data"]
        chunks = [chunk async for chunk in stream]
        return b"".join(chunks), isinstance(stream, http.BodyStream)

    content, is_stream = asyncio.run(job(state_for(server)))
    assert is_stream
    assert content == b"0123456789" * 1000


# --- pagination ------------------------------------------------------------------------------


def test_get_all_follows_a_next_link_in_the_body(server: HTTPServer) -> None:
    server.expect_request("/items", query_string="").respond_with_json(
        {"data": [1, 2], "links": {"next": "/items?after=2"}}
    )
    server.expect_request("/items", query_string="after=2").respond_with_json(
        {"data": [3], "links": {"next": server.url_for("/items?after=3")}}
    )
    server.expect_request("/items", query_string="after=3").respond_with_json(
        {"data": [], "links": {"next": None}}
    )
    paginate = http.next_link("links.next")
    state = run(http.get_all("/items", paginate=paginate, items="data"), state_for(server))
    assert state["data"] == [1, 2, 3]
    assert state["response"]["pages"] == 3
    assert state["references"] == [{"before": True}]


def test_get_all_follows_the_link_header(server: HTTPServer) -> None:
    link = f'<{server.url_for("/rows")}?page=2>; rel="next"'
    server.expect_request("/rows", query_string="").respond_with_json([1], headers={"Link": link})
    server.expect_request("/rows", query_string="page=2").respond_with_json([2])
    state = run(http.get_all("/rows", paginate=http.next_link()), state_for(server))
    assert state["data"] == [1, 2]


def test_get_all_counts_page_numbers_until_a_short_page(server: HTTPServer) -> None:
    for page, rows in ((1, [1, 2]), (2, [3, 4]), (3, [5])):
        server.expect_request(
            "/rows", query_string=f"q=x&page={page}&per_page=2"
        ).respond_with_json({"results": rows})
    paginate = http.page_number("page", size_param="per_page", size=2)
    operation = http.get_all("/rows", paginate=paginate, items="results", query={"q": "x"})
    assert run(operation, state_for(server))["data"] == [1, 2, 3, 4, 5]


def test_get_all_moves_the_offset_by_the_items_received(server: HTTPServer) -> None:
    server.expect_request("/rows", query_string="offset=0&limit=2").respond_with_json([1, 2])
    server.expect_request("/rows", query_string="offset=2&limit=2").respond_with_json([3])
    paginate = http.page_offset(limit=2)
    assert run(http.get_all("/rows", paginate=paginate), state_for(server))["data"] == [1, 2, 3]


def test_get_all_sends_the_cursor_until_there_is_none(server: HTTPServer) -> None:
    server.expect_request("/events", query_string="").respond_with_json(
        {"events": ["a"], "meta": {"next": "c1"}}
    )
    server.expect_request("/events", query_string="cursor=c1").respond_with_json(
        {"events": ["b"], "meta": {"next": None}}
    )
    paginate = http.next_cursor("meta.next")
    state = run(http.get_all("/events", paginate=paginate, items="events"), state_for(server))
    assert state["data"] == ["a", "b"]


def test_get_all_without_items_collects_page_bodies(server: HTTPServer) -> None:
    server.expect_request("/p", query_string="").respond_with_json({"n": 1, "next": "/p?n=2"})
    server.expect_request("/p", query_string="n=2").respond_with_json({"n": 2})
    state = run(http.get_all("/p", paginate=http.next_link("next")), state_for(server))
    assert state["data"] == [{"n": 1, "next": "/p?n=2"}, {"n": 2}]


def test_get_all_stops_at_max_pages_and_at_a_repeated_request(server: HTTPServer) -> None:
    server.expect_request("/loop").respond_with_json({"items": [1], "next": "/loop"})
    paginate = http.next_link("next")
    state = run(http.get_all("/loop", paginate=paginate, items="items"), state_for(server))
    assert state["response"]["pages"] == 1
    server.expect_request("/many").respond_with_handler(
        lambda request: Response(
            json.dumps({"items": [1], "next": f"/many?n={int(request.args.get('n', 0)) + 1}"}),
            content_type="application/json",
        )
    )
    operation = http.get_all("/many", paginate=paginate, items="items", max_pages=4)
    assert run(operation, state_for(server))["data"] == [1, 1, 1, 1]


def test_page_numbers_need_items_when_pages_are_not_lists(server: HTTPServer) -> None:
    server.expect_request("/rows").respond_with_json({"results": []})
    error = failure(http.get_all("/rows", paginate=http.page_number()), state_for(server))
    assert error.message == "The page body is not a list, so the end of the pages cannot be seen"


# --- the adaptor's surface and the per-run client ----------------------------------------------


def test_all_is_sorted_and_every_export_is_documented_with_an_example() -> None:
    assert http.__all__ == sorted(http.__all__)
    for name in http.__all__:
        doc = inspect.getdoc(getattr(http, name)) or ""
        assert doc.splitlines()[0], name
        if name != "BodyStream":
            assert "Example" in doc, name


def test_operations_share_one_client_per_run_closed_when_the_run_ends(server: HTTPServer) -> None:
    from statefn._context import RunContext, enter_run

    server.expect_request("/a").respond_with_json({})
    run_context = RunContext("run-1")

    async def two_requests() -> list[Any]:
        enter_run(run_context)
        state = state_for(server)
        await http.get("/a")(state)
        await http.get("/a")(state)
        clients = list(run_context._resources.values())
        await run_context.close_loop_resources()
        return clients

    clients = asyncio.run(two_requests())
    assert len(clients) == 1
    assert clients[0].is_closed


# --- through statefn.run -----------------------------------------------------------------------


def one_step_plan(server: HTTPServer, expression: str, **configuration: Any) -> dict[str, Any]:
    step = {
        "id": "fetch",
        "adaptors": ["http"],
        "expression": expression,
        "configuration": {"base_url": server.url_for(""), **configuration},
    }
    return {"workflow": {"steps": [step]}}


def test_job_source_sends_requests_through_run(server: HTTPServer) -> None:
    server.expect_request("/patients").respond_with_json([{"id": 1}, {"id": 2}])
    server.expect_request("/patients/2", method="POST").respond_with_json({"saved": True})
    expression = (
        "get('/patients')\npost(lambda s: f\"/patients/{s['data'][-1]['id']}\", body=S.data[0])\n"
    )
    result = statefn.run(one_step_plan(server, expression, access_token=TOKEN))
    assert result["data"] == {"saved": True}
    assert result["references"][-1] == [{"id": 1}, {"id": 2}]
    assert "configuration" not in result
    posted = requests(server)[1]
    assert json.loads(posted.data) == {"id": 1}
    assert posted.headers["Authorization"] == f"Bearer {TOKEN}"


def test_failed_request_through_run_is_recorded_without_credentials(server: HTTPServer) -> None:
    server.expect_request("/secret").respond_with_data("denied", status=401)
    events: list[tuple[str, Any]] = []
    plan = one_step_plan(server, "get('/secret')", username="ada", password=PASSWORD)
    result = statefn.run(plan, on_event=lambda name, payload: events.append((name, payload)))
    record = result["errors"]["fetch"]
    assert (record["name"], record["details"]["status"]) == ("AdaptorError", 401)
    everything = json.dumps([result, events])
    assert PASSWORD not in everything
    assert base64.b64encode(f"ada:{PASSWORD}".encode()).decode() not in everything
