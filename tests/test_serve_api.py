"""``statefn serve``'s JSON API, end to end: a real server process on a free port, spoken to
over HTTP, on a SQLite ledger and on PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Server, start_server
from statefn.serve._auth import (
    COOKIE,
    GUESS_LIMIT,
    GUESS_WINDOW_S,
    SESSION_MAX_AGE_S,
    Guesses,
    _session_mac,
)
from statefn.serve._http import TooManyGuesses

ORDERS = """\
workflow:
  name: orders
  steps:
    - id: intake
      webhook: true
      next: total
    - id: total
      expression: ./total.py
      next: report
    - id: report
      expression: ./report.py
"""
TOTAL = """\
@fn
def total(state):
    print("adding up", len(state["data"]["amounts"]), "amounts")
    return {**state, "data": {**state["data"], "total": sum(state["data"]["amounts"])}}
"""
REPORT = """\
@fn
def report(state):
    if state["data"]["total"] > 100:
        raise ValueError("total over 100")
    return {**state, "data": {**state["data"], "report": "ok"}}
"""
REPORT_FIXED = REPORT.replace("> 100", "> 1000")
SPIN = """\
@fn
def spin(state):
    n = 0
    while True:
        n += 1
"""


def write_project(folder: Path) -> Path:
    folder.mkdir()
    (folder / "orders.yaml").write_text(ORDERS)
    (folder / "total.py").write_text(TOTAL)
    (folder / "report.py").write_text(REPORT)
    (folder / "spin.json").write_text(
        json.dumps({"workflow": {"steps": [{"id": "spin", "expression": "./spin.py"}]}})
    )
    (folder / "spin.py").write_text(SPIN)
    (folder / "broken.json").write_text('{"workflow": {"steps": [{"id": "a", "next": "b"}]}}')
    (folder / "input.json").write_text('{"data": {"not": "a workflow"}}')
    return folder


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    project = write_project(tmp_path_factory.mktemp("serve") / "project")
    if request.param == "sqlite":
        running = start_server(project)
        yield running
        assert running.stop() == 130
        return
    import psycopg

    database: str = request.getfixturevalue("postgres_database")
    schema = f"serve_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    running = start_server(project, "--ledger", f"{database}?options=-csearch_path%3D{schema}")
    try:
        yield running
    finally:
        assert running.stop() == 130
        with psycopg.connect(database, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")




def start(server: Server, workflow: str, state: Any) -> str:
    response = server.client.post(f"/api/workflows/{workflow}/runs", json=state)
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()["error"]
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


def test_workflows_lists_each_workflow_file_with_its_steps_triggers_and_errors(
    server: Server,
) -> None:
    workflows = {w["name"]: w for w in server.client.get("/api/workflows").json()["workflows"]}
    assert sorted(workflows) == ["broken", "orders", "spin"]  # input.json is not a workflow
    orders = workflows["orders"]
    assert orders["file"] == "orders.yaml"
    assert [step["id"] for step in orders["steps"]] == ["intake", "total", "report"]
    assert orders["triggers"] == [
        {"step": "intake", "webhook": True, "signed": False, "cron": None, "next_tick": None}
    ]
    assert [(edge["from"], edge["to"]) for edge in orders["edges"]] == [
        ("intake", "total"),
        ("total", "report"),
    ]
    broken = workflows["broken"]
    assert broken["valid"] is False
    assert len(broken["errors"]) == 1
    assert broken["errors"][0].startswith("Invalid plan ")
    assert "Cannot find job: b" in broken["errors"][0]
    assert broken["triggers"] == []


def test_a_started_run_completes_and_its_steps_states_and_logs_are_served(server: Server) -> None:
    run_id = start(server, "orders", {"data": {"amounts": [10, 20]}})
    run = server.finished(run_id)
    assert (run["workflow"], run["reason"]) == ("orders", "success")
    assert [step["key"] for step in run["steps"]] == ["total", "report"]
    state = server.client.get(f"/api/runs/{run_id}/steps/report/state").json()
    assert state == {"state": {"data": {"amounts": [10, 20], "total": 30, "report": "ok"}},
                     "withheld": None}  # fmt: skip
    given = server.client.get(f"/api/runs/{run_id}/steps/total/state?which=input").json()
    assert given["state"] == {"data": {"amounts": [10, 20]}}
    logs = server.client.get(f"/api/runs/{run_id}/logs").json()["logs"]
    assert [(line["step_id"], line["message"]) for line in logs] == [("total", "adding up 2 amounts")]
    latest = server.client.get("/api/workflows").json()["workflows"]
    assert next(w for w in latest if w["name"] == "orders")["last_run"]["run_id"] is not None


def test_runs_are_listed_newest_first_and_paged_with_before(server: Server) -> None:
    ids = [start(server, "orders", {"data": {"amounts": [n]}}) for n in range(3)]
    for run_id in ids:
        server.finished(run_id)
    page = server.client.get("/api/runs", params={"workflow": "orders", "limit": 2}).json()
    assert [run["run_id"] for run in page["runs"]] == [ids[2], ids[1]]
    assert page["next_before"] == ids[1]
    rest = server.client.get(
        "/api/runs", params={"workflow": "orders", "limit": 2, "before": ids[1]}
    ).json()
    assert rest["runs"][0]["run_id"] == ids[0]
    failed = server.client.get("/api/runs", params={"reason": "fail"}).json()["runs"]
    assert all(run["reason"] == "fail" for run in failed)


def test_the_last_page_of_runs_has_no_next_before_even_when_it_is_full(server: Server) -> None:
    for n in range(2):
        start(server, "orders", {"data": {"amounts": [n]}})
    every = server.client.get("/api/runs", params={"workflow": "orders", "limit": 500}).json()
    ids = [run["run_id"] for run in every["runs"]]
    assert every["next_before"] is None
    exact = server.client.get("/api/runs", params={"workflow": "orders", "limit": len(ids)})
    assert [run["run_id"] for run in exact.json()["runs"]] == ids
    assert exact.json()["next_before"] is None
    first = server.client.get("/api/runs", params={"workflow": "orders", "limit": len(ids) - 1})
    assert first.json()["next_before"] == ids[-2]
    rest = server.client.get(
        "/api/runs", params={"workflow": "orders", "limit": len(ids) - 1, "before": ids[-2]}
    ).json()
    assert ([run["run_id"] for run in rest["runs"]], rest["next_before"]) == ([ids[-1]], None)


def test_paging_before_an_unknown_run_is_400_naming_it(server: Server) -> None:
    error = error_of(server.client.get("/api/runs", params={"before": "no-such-run"}), 400)
    assert "no run 'no-such-run' is in the ledger" in error["message"]
    oldest = server.client.get("/api/runs", params={"limit": 500}).json()["runs"][-1]["run_id"]
    after_oldest = server.client.get("/api/runs", params={"before": oldest})
    assert after_oldest.json() == {"runs": [], "next_before": None}  # known, nothing older


def test_empty_query_parameters_count_as_absent(server: Server) -> None:
    server.finished(start(server, "orders", {"data": {"amounts": [2]}}))
    empty = server.client.get("/api/runs?workflow=&reason=&limit=&before=")
    assert empty.status_code == 200, empty.text
    assert empty.json()["runs"]
    assert empty.json() == server.client.get("/api/runs").json()


def test_logs_follow_a_running_run_as_server_sent_events(server: Server) -> None:
    run_id = start(server, "orders", {"data": {"amounts": [1, 2, 3]}})
    events = []
    with server.client.stream(
        "GET", f"/api/runs/{run_id}/logs", headers={"Accept": "text/event-stream"}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
    assert events[-1] == "end"
    assert "log" in events
    assert events.count("step") >= 2


def test_retry_from_a_failed_step_uses_its_recorded_input_and_the_fixed_job_file(
    server: Server,
) -> None:
    folder = server.project
    run_id = start(server, "orders", {"data": {"amounts": [100, 200]}})
    run = server.finished(run_id)
    assert run["reason"] == "fail"
    assert run["steps"][-1]["error"]["message"] == "ValueError: total over 100"
    (folder / "report.py").write_text(REPORT_FIXED)
    try:
        deadline = time.monotonic() + 10
        while True:  # the server notices the change within its poll interval
            retried = server.client.post(f"/api/runs/{run_id}/retry", params={"from": "report"})
            assert retried.status_code == 202, retried.text
            again = server.finished(retried.json()["run_id"])
            if again["reason"] == "success" or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert again["reason"] == "success"
        assert [step["key"] for step in again["steps"]] == ["report"]  # total did not run again
        output = server.client.get(f"/api/runs/{again['run_id']}/steps/report/state").json()
        assert output["state"]["data"] == {"amounts": [100, 200], "total": 300, "report": "ok"}
    finally:
        (folder / "report.py").write_text(REPORT)


def test_cancel_ends_a_running_run_and_a_second_cancel_conflicts(server: Server) -> None:
    run_id = start(server, "spin", None)
    response = server.client.post(f"/api/runs/{run_id}/cancel")
    assert response.status_code == 202, response.text
    assert server.finished(run_id)["reason"] == "cancel"
    again = error_of(server.client.post(f"/api/runs/{run_id}/cancel"), 409)
    assert "already ended (cancel)" in again["message"]


def test_invalid_json_is_400_with_the_position_of_the_error(server: Server) -> None:
    response = server.client.post(
        "/api/workflows/orders/runs",
        content=b'{"data": {\n  "amounts": [1,, 2]}}',
        headers={"Content-Type": "application/json"},
    )
    error = error_of(response, 400)
    assert (error["line"], error["column"]) == (2, 17)
    assert "line 2 column 17" in error["message"]


def test_a_state_that_is_not_an_object_is_400(server: Server) -> None:
    error = error_of(server.client.post("/api/workflows/orders/runs", json=[1, 2]), 400)
    assert "must be a JSON object" in error["message"]


def test_unknown_workflow_run_and_step_are_404(server: Server) -> None:
    error = error_of(server.client.post("/api/workflows/nope/runs", json={}), 404)
    assert "No workflow named 'nope'" in error["message"] and "orders" in error["message"]
    error_of(server.client.get("/api/runs/no-such-run"), 404)
    error_of(server.client.get("/api/nothing-here"), 404)
    error_of(server.client.delete("/api/runs"), 405)
    error_of(server.client.get("/api/runs/no-such-run/logs"), 404)
    run_id = start(server, "orders", {"data": {"amounts": [1]}})
    server.finished(run_id)
    error = error_of(server.client.get(f"/api/runs/{run_id}/steps/nope/state"), 404)
    assert "its step runs are: total, report" in error["message"]


def test_starting_a_workflow_that_does_not_validate_is_422_with_its_errors(server: Server) -> None:
    error = error_of(server.client.post("/api/workflows/broken/runs", json={}), 422)
    assert any("Cannot find job: b" in line for line in error["errors"])


@pytest.mark.parametrize(
    ("path", "limit"), [("/api/workflows/orders/runs", 252), ("/hooks/orders/intake", 251)]
)
def test_a_body_nested_deeper_than_a_state_may_be_is_400_saying_so(
    server: Server, path: str, limit: int
) -> None:
    # orjson parses 1024 levels but writes 254, and a state goes 2 levels deeper on its way
    # to a distributed worker; a webhook's body goes 1 level down, as the state's data.
    def post(depth: int) -> httpx.Response:
        body = b'{"data": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
        return server.client.post(path, content=body, headers={"Content-Type": "application/json"})

    for depth in (limit + 1, 301):
        error = error_of(post(depth), 400)
        assert error["message"] == (
            f"The JSON body is nested {depth} levels deep; at most {limit} levels are accepted"
        )
        assert (error["depth"], error["max_depth"]) == (depth, limit)
    assert "not valid JSON" in error_of(post(100_000), 400)["message"]
    response = post(limit)
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    assert server.finished(run_id)["reason"] == "fail"  # total finds no amounts: it ran
    given = server.client.get(f"/api/runs/{run_id}/steps/total/state?which=input").json()
    sent = {"data": json.loads("[" * (limit - 1) + "]" * (limit - 1))}
    assert given["state"] == (sent if path.startswith("/api") else {"data": sent})


def test_a_body_over_the_limit_is_413(server: Server) -> None:
    body = b'{"data": "' + b"x" * (1024 * 1024) + b'"}'
    error = error_of(
        server.client.post(
            "/api/workflows/orders/runs", content=body, headers={"Content-Type": "application/json"}
        ),
        413,
    )
    assert error["limit"] == 1024 * 1024


def test_bad_query_parameters_are_400(server: Server) -> None:
    assert "limit must be" in error_of(server.client.get("/api/runs?limit=0"), 400)["message"]
    # Digits str.isdigit takes but int refuses, and numbers too long for int, are 400 too.
    assert "limit must be" in error_of(server.client.get("/api/runs?limit=²"), 400)["message"]
    error_of(server.client.get("/api/runs?limit=" + "9" * 5000), 400)
    assert "reason must be" in error_of(server.client.get("/api/runs?reason=x"), 400)["message"]


def test_openapi_document_names_every_api_route(server: Server) -> None:
    document = server.client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) >= {
        "/api/workflows", "/api/workflows/{name}/runs", "/api/runs", "/api/runs/{run_id}",
        "/api/runs/{run_id}/logs", "/api/runs/{run_id}/steps/{key}/state",
        "/api/runs/{run_id}/retry", "/api/runs/{run_id}/cancel", "/hooks/{workflow}/{trigger}",
        "/healthz",
    }  # fmt: skip


def serve_command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    environment = {**os.environ, "STATEFN_TOKEN": "", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "statefn", "serve", *args],
        capture_output=True, text=True, timeout=60, env=environment,
    )  # fmt: skip


def test_a_public_address_without_a_token_is_exit_2_saying_how_to_fix_it(tmp_path: Path) -> None:
    result = serve_command(str(tmp_path), "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "a token is required: give --token T or set STATEFN_TOKEN" in result.stderr


def test_a_taken_port_is_exit_3(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve_command(str(tmp_path), "--port", str(port))
    assert result.returncode == 3
    assert f"Port {port} on 127.0.0.1 is in use by another program" in result.stderr


def test_connections_are_accepted_without_nagle_delays() -> None:
    # A kept-alive connection otherwise waits ~40 ms per response for a delayed ACK.
    import socket

    from statefn.cli._serve import _listen

    with (
        _listen("127.0.0.1", 0) as listener,
        socket.create_connection(listener.getsockname()),
    ):
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_a_bad_ledger_is_exit_3_with_its_password_masked(tmp_path: Path) -> None:
    url = "postgresql://statefn:hunter2@127.0.0.1:1/nowhere"
    result = serve_command(str(tmp_path), "--port", "0", "--ledger", url)
    assert result.returncode == 3
    assert "postgresql://statefn:***@127.0.0.1:1/nowhere" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_a_missing_project_folder_is_exit_3(tmp_path: Path) -> None:
    result = serve_command(str(tmp_path / "nope"), "--port", "0")
    assert result.returncode == 3
    assert "does not exist" in result.stderr


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with a token (on loopback, where it is optional but then enforced)."""
    project = write_project(tmp_path_factory.mktemp("guarded") / "project")
    running = start_server(project, token="s3cret-token")
    yield running
    running.stop()


def test_with_a_token_the_api_refuses_requests_without_it(guarded: Server) -> None:
    anonymous = httpx.Client(base_url=guarded.url)
    error = error_of(anonymous.get("/api/runs"), 401)
    assert "Authorization: Bearer TOKEN" in error["message"]
    error_of(anonymous.get("/api/runs", headers={"Authorization": "Bearer wrong"}), 401)
    error_of(anonymous.post("/hooks/orders/intake", json={}), 401)  # unsigned: needs the token
    assert guarded.client.get("/api/runs").status_code == 200
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/openapi.json").status_code == 200


def test_a_page_without_the_token_redirects_to_the_login_form(guarded: Server) -> None:
    anonymous = httpx.Client(base_url=guarded.url)
    response = anonymous.get("/runs", headers={"Accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/runs"


def test_logging_in_sets_a_session_cookie_that_opens_the_api(guarded: Server) -> None:
    browser = httpx.Client(base_url=guarded.url)
    refused = browser.post("/login", data={"token": "guess", "next": "/"})
    assert refused.status_code == 401 and "not the server" in refused.text
    response = browser.post("/login", data={"token": "s3cret-token", "next": "https://evil.example/"})
    assert response.status_code == 303
    assert response.headers["location"] == "/"  # never another site
    for target in ("//evil.example/", "/\\evil.example/", "javascript:alert(1)"):
        again = browser.post("/login", data={"token": "s3cret-token", "next": target})
        assert again.headers["location"] == "/", target
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert f"Max-Age={SESSION_MAX_AGE_S}" in cookie
    assert "s3cret-token" not in cookie
    assert browser.get("/api/runs").status_code == 200


def test_a_logged_out_session_is_refused_in_any_hands_and_an_old_one_expires(guarded: Server) -> None:
    browser = httpx.Client(base_url=guarded.url)
    assert browser.post("/login", data={"token": "s3cret-token", "next": "/"}).status_code == 303
    session = browser.cookies[COOKIE]
    stolen = httpx.Client(base_url=guarded.url, cookies={COOKIE: session})
    assert stolen.get("/api/runs").status_code == 200
    assert browser.post("/logout", headers={"Origin": guarded.url}).status_code == 303
    error_of(browser.get("/api/runs"), 401)  # the browser forgot the cookie
    error_of(stolen.get("/api/runs"), 401)  # and the server refuses any copy of it
    # A cookie signed with the token, but issued longer ago than a session lasts.
    issued, session_id = str(int(time.time()) - SESSION_MAX_AGE_S - 1), "a" * 32
    expired = f"{issued}.{session_id}.{_session_mac('s3cret-token', issued, session_id)}"
    error_of(httpx.get(f"{guarded.url}/api/runs", cookies={COOKIE: expired}), 401)


def test_a_followed_run_resumes_after_the_last_event_id(server: Server) -> None:
    run_id = start(server, "orders", {"data": {"amounts": [5]}})
    server.finished(run_id)
    headers = {"Accept": "text/event-stream", "Last-Event-ID": "1"}
    with server.client.stream("GET", f"/api/runs/{run_id}/logs", headers=headers) as response:
        events = [line for line in response.iter_lines() if line.startswith("event: ")]
    assert "event: log" not in events  # the only log line (seq 1) was seen already
    assert events[-1] == "event: end"


def test_the_quickstart_example_runs_when_served(tmp_path: Path) -> None:
    import shutil

    project = tmp_path / "quickstart"
    shutil.copytree(Path(__file__).parent.parent / "examples" / "quickstart", project)
    running = start_server(project)
    try:
        run_id = start(running, "quickstart", None)
        run = running.finished(run_id)
        assert run["reason"] == "success"
        assert [step["key"] for step in run["steps"]] == ["load", "clean", "review", "summarize"]
        assert (project / ".statefn" / "runs.db").exists()  # the default ledger
    finally:
        running.stop()


def test_a_run_the_ledger_refuses_is_503_and_starts_nothing(tmp_path: Path) -> None:
    import sqlite3

    project = write_project(tmp_path / "project")
    running = start_server(project)
    try:
        with sqlite3.connect(project / ".statefn" / "runs.db") as connection:
            connection.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'full'); END"
            )
        error = error_of(running.client.post("/api/workflows/orders/runs", json={}), 503)
        assert error["message"].startswith("The run could not be recorded: ")
        assert "full" in error["message"]
        assert running.client.get("/api/runs").json()["runs"] == []
    finally:
        running.stop()


def test_another_site_cannot_change_anything_but_the_same_site_can(server: Server) -> None:
    post = "/api/workflows/orders/runs"
    before = len(server.client.get("/api/runs?limit=500").json()["runs"])
    for header in ({"Origin": "http://evil.example"}, {"Referer": "http://evil.example/x"}):
        error = error_of(server.client.post(post, json={}, headers=header), 403)
        assert "another site" in error["message"]
    form = server.client.post(
        "/workflows/orders/runs", data={"state": "{}"}, headers={"Origin": "null"}
    )
    assert form.status_code == 403
    assert len(server.client.get("/api/runs?limit=500").json()["runs"]) == before
    same_site = server.client.post(post, json={}, headers={"Origin": server.url})
    assert same_site.status_code == 202


def test_without_a_token_only_loopback_host_names_are_answered(server: Server) -> None:
    error = error_of(server.client.get("/api/runs", headers={"Host": "rebound.example"}), 403)
    assert "answers only to localhost" in error["message"]
    assert server.client.get("/api/runs", headers={"Host": "localhost"}).status_code == 200


def test_the_live_stream_of_an_unknown_run_is_404(server: Server) -> None:
    error_of(server.client.get("/runs/no-such-run/live"), 404)


def test_an_address_that_sends_wrong_tokens_is_refused_for_a_while(tmp_path: Path) -> None:
    """Bearer headers and logins count alike; once over the limit, a request that carries a
    token gets 429 whether the token is right or not; one that carries none is not a guess."""
    server = start_server(write_project(tmp_path / "project"), token="s3cret-token")
    try:
        anonymous = httpx.Client(base_url=server.url)
        for _ in range(GUESS_LIMIT // 2):
            error_of(anonymous.get("/api/runs", headers={"Authorization": "Bearer wrong"}), 401)
        for _ in range(GUESS_LIMIT - GUESS_LIMIT // 2):
            assert anonymous.post("/login", data={"token": "guess"}).status_code == 401
        error_of(anonymous.get("/api/runs"), 401)
        right = {"Authorization": "Bearer s3cret-token"}
        refused = anonymous.get("/api/runs", headers=right)
        error = error_of(refused, 429)
        assert 0 < error["retry_after_s"] == int(refused.headers["retry-after"]) <= GUESS_WINDOW_S
        assert "Too many wrong tokens" in error["message"]
        error_of(anonymous.post("/hooks/orders/intake", json={}, headers=right), 429)
        login = anonymous.post("/login", data={"token": "s3cret-token", "next": "/"})
        assert login.status_code == 429 and "Too many wrong tokens" in login.text
        assert 0 < int(login.headers["retry-after"]) <= GUESS_WINDOW_S
        assert "set-cookie" not in login.headers
        assert anonymous.get("/healthz").status_code == 200
    finally:
        server.stop()


def test_guesses_let_one_more_through_as_each_ages_out_and_forget_the_quietest() -> None:
    now = [0.0]
    guesses = Guesses(clock=lambda: now[0])
    for _ in range(GUESS_LIMIT):
        guesses.check("10.0.0.1")
        guesses.add("10.0.0.1")
        now[0] += 1
    with pytest.raises(TooManyGuesses) as refused:
        guesses.check("10.0.0.1")
    assert refused.value.details["retry_after_s"] == GUESS_WINDOW_S - GUESS_LIMIT
    guesses.check("10.0.0.2")  # another address is not held back
    now[0] = GUESS_WINDOW_S  # the first guess is now a window old: one more may come
    guesses.check("10.0.0.1")
    guesses.add("10.0.0.1")
    with pytest.raises(TooManyGuesses):
        guesses.check("10.0.0.1")
    for number in range(10_000):  # as many other addresses guess once each
        guesses.add(f"10.1.{number // 256}.{number % 256}")
    guesses.check("10.0.0.1")  # the quietest is forgotten: memory stays bounded


def test_a_webhook_tells_a_caller_without_the_token_nothing(guarded: Server) -> None:
    anonymous = httpx.Client(base_url=guarded.url)
    for path in ("/hooks/nope/x", "/hooks/orders/nope"):
        error = error_of(anonymous.post(path, json={}), 404)
        assert error["message"] == "No such webhook"
    named = error_of(guarded.client.post("/hooks/nope/x", json={}), 404)
    assert "orders" in named["message"]


def test_sigterm_stops_the_server_at_once_and_its_running_runs_end_cancelled(
    tmp_path: Path,
) -> None:
    import signal

    from statefn import ledger

    project = write_project(tmp_path / "project")
    running = start_server(project)
    run_ids = [start(running, "spin", None) for _ in range(3)]  # two run, one waits
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=30) == 0
    running.stop()
    with ledger.open(str(project / ".statefn" / "runs.db")) as book:
        assert {book.run(run_id).status for run_id in run_ids} == {"cancel"}


def test_a_credentials_file_is_checked_as_statefn_run_checks_it(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project")
    for content, problem in (
        ("[1, 2]", "expected a map of credential id to configuration"),
        ('{"partner": "hunter2"}', "credential 'partner' must be an object"),
    ):
        credentials = tmp_path / "credentials.json"
        credentials.write_text(content)
        result = serve_command(str(project), "--port", "0", "--credentials", str(credentials))
        assert result.returncode == 3
        assert problem in result.stderr
