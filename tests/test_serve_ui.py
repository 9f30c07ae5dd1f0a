"""The web UI in a real browser: Debian's Chromium driven by Playwright, against a real
``statefn serve`` process on a free port with a project in ``tmp_path``.

Screenshots go to each test's ``tmp_path``. To refresh the ones the docs show, run
``STATEFN_UI_SCREENSHOTS=docs/images .venv/bin/pytest tests/test_serve_ui.py``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from conftest import Server, start_server
from statefn import ledger
from statefn.ledger import LogLine

expect.set_options(timeout=15_000)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SECRET = "sEcReT-4f1d9a77"
HOSTILE_NAME = '<img src=x onerror="window.__xss = 5">'
HOSTILE_INPUT = '{"data": {"note": "<script>window.__xss = 6</script>"}}'
WAIT_JOB = 'get("{gate}")\n'
BROKEN_JOB = """\
def greet(state):
    print("<script>window.__xss = 1</script>")
    print('<img src=x onerror="window.__xss = 2">')
    print("calling with key", state["configuration"]["api_key"])
    return state["data"]["missing"]


fn(greet)
"""
FIXED_JOB = """\
def greet(state):
    state["data"]["greeting"] = "hello " + state["data"]["name"]
    state["data"]["html"] = "<script>window.__xss = 3</script>"
    return state


fn(greet)
"""
WORKFLOW = f"""\
workflow:
  name: greetings
  credentials: {{api_key: {SECRET}}}
  steps:
    - id: hook
      webhook: true
      next: wait
    - id: wait
      adaptors: [http]
      expression: ./wait.py
      next: {{greet: {{condition: on_job_success, label: fetched}}}}
    - id: greet
      expression: ./greet.py
"""
BROKEN_WORKFLOW = """\
workflow:
  name: broken
  steps:
    - id: a
      expresion: "fn(lambda state: state)"
"""


@contextmanager
def _served(project: Path, token: str | None = None) -> Iterator[Server]:
    server = start_server(project, token=token)
    try:
        yield server
    finally:
        assert server.stop() == 130


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"The browser tests drive Debian's Chromium at {CHROMIUM}, which is not installed: "
            "apt-get install chromium (.ci/run does)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 640})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


class Gate:
    """An HTTP endpoint that answers only once the test opens it, so a run waits there."""

    def __init__(self, server: HTTPServer) -> None:
        self.opened = threading.Event()
        self.url = server.url_for("/gate")
        server.expect_request("/gate").respond_with_handler(self._answer)

    def _answer(self, request: Request) -> Response:
        self.opened.wait(30)
        return Response(json.dumps({"name": HOSTILE_NAME}), content_type="application/json")


@pytest.fixture
def gate(httpserver: HTTPServer) -> Gate:
    return Gate(httpserver)


def _shoot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    keep = os.environ.get("STATEFN_UI_SCREENSHOTS")
    if keep:
        shutil.copy(path, Path(keep) / f"{name}.png")


def _project(tmp_path: Path, gate: Gate) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "greetings.yaml").write_text(WORKFLOW)
    (project / "wait.py").write_text(WAIT_JOB.format(gate=gate.url))
    (project / "greet.py").write_text(BROKEN_JOB)
    return project


def _assert_nothing_ran_or_leaked(page: Page) -> None:
    assert page.evaluate("window.__xss") is None
    assert SECRET not in page.content()


def test_a_failed_step_is_read_fixed_and_retried_from_the_browser(
    page: Page, gate: Gate, tmp_path: Path
) -> None:
    project = _project(tmp_path, gate)
    with _served(project) as server:
        base = server.url
        page.goto(base + "/")
        expect(page.locator("section.workflow svg.graph g.node")).to_have_count(3)
        expect(page.locator("section.workflow")).to_contain_text(
            "webhook POST /hooks/greetings/hook"
        )
        page.get_by_role("link", name="greetings", exact=True).click()
        expect(page.locator("h1")).to_contain_text("greetings")

        page.fill("textarea#input", '{"data": {"name": }')
        page.get_by_role("button", name="Start run").click()
        expect(page.locator("#input-error")).to_contain_text("not valid JSON")
        expect(page.locator("#input-error")).to_contain_text("line 1 column 19")
        expect(page.locator("textarea#input")).to_have_value('{"data": {"name": }')

        page.fill("textarea#input", "{}")
        page.get_by_role("button", name="Start run").click()
        expect(page.locator("h1 .badge")).to_have_text(re.compile("queued|started"))
        page.get_by_role("button", name="Cancel run").click()
        expect(page.locator("h1 .badge")).to_have_text("cancel")
        expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)

        page.goto(base + "/workflows/greetings")
        page.fill("textarea#input", HOSTILE_INPUT)
        page.keyboard.press("Control+Enter")
        expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
        first_run = page.url
        page.evaluate("window.__samePage = true")
        expect(page.locator("h1 .badge")).to_have_text(re.compile("queued|started"))
        expect(page.locator("table.steps")).to_contain_text("wait")  # live: the step began
        gate.opened.set()
        expect(page.locator("h1 .badge")).to_have_text("fail")
        expect(page.locator("table.logs")).to_contain_text("<script>window.__xss = 1</script>")
        assert page.evaluate("window.__samePage") is True  # followed live, never reloaded

        page.locator("table.steps").get_by_role("link", name="greet").click()
        expect(page).to_have_url(re.compile(r"\?step=greet$"))
        error = page.locator("section[data-swap=step] .error")
        expect(error).to_contain_text("RuntimeError (KeyError)")
        expect(error).to_contain_text("KeyError: 'missing'")
        expect(error).to_contain_text('return state["data"]["missing"]')
        logs = page.locator("table.logs")
        expect(logs).to_contain_text('<img src=x onerror="window.__xss = 2">')
        expect(logs).to_contain_text("calling with key ***")
        expect(page.locator("section[data-swap=step]")).to_contain_text("<img src=x onerror")
        expect(page.locator("svg.graph g.node.reason-fail")).to_have_attribute("data-step", "greet")
        _assert_nothing_ran_or_leaked(page)
        _shoot(page, tmp_path, "run-failed")

        (project / "greet.py").write_text(FIXED_JOB)
        expect(page.locator("select[name=from]")).to_have_value("greet")
        page.get_by_role("button", name="Retry").click()
        expect(page).not_to_have_url(first_run)
        expect(page.locator("h1 .badge")).to_have_text("success")
        expect(page.locator("table.steps tbody tr")).to_have_count(1)  # from greet, not the start
        expect(page.locator("table.steps")).to_contain_text("greet")
        output = page.locator("details[data-id='Output state']")
        expect(output).to_contain_text(json.dumps("hello " + HOSTILE_NAME))
        expect(page.locator("table.diff")).to_contain_text("data.greeting")
        _assert_nothing_ran_or_leaked(page)

        page.goto(base + "/runs")
        rows = page.locator("table.runs tbody tr")
        expect(rows).to_have_count(3)
        page.evaluate("window.__samePage = true")
        started = server.client.post("/api/workflows/greetings/runs", json={"data": {}})
        assert started.status_code == 202
        expect(rows).to_have_count(4)  # the runs page follows new runs live
        expect(rows.first).to_contain_text(started.json()["run_id"][:12])
        expect(rows.first.locator(".badge")).to_have_text("success")
        assert page.evaluate("window.__samePage") is True
        _shoot(page, tmp_path, "runs")

        page.keyboard.press("/")
        assert page.evaluate("document.activeElement.name") == "workflow"
        page.keyboard.press("Escape")
        page.keyboard.press("j")
        page.keyboard.press("j")
        expect(rows.nth(1)).to_have_class(re.compile("selected"))
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
        page.keyboard.press("g")
        page.keyboard.press("w")
        expect(page.locator("h1")).to_contain_text("Workflows")
        expect(page.locator("section.workflow .badge")).to_have_text("success")  # last run
        _shoot(page, tmp_path, "workflows")


def test_pages_need_the_token_and_show_what_does_not_validate(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "broken.yaml").write_text(BROKEN_WORKFLOW)
    with _served(project, token="t0ken") as server:
        pages = ["/", "/workflows/broken", "/runs", "/runs/1234"]
        with httpx.Client(base_url=server.url) as stranger:
            for path in pages:
                assert stranger.get(path).status_code in (302, 303, 401), path
            for path in ("/workflows/broken/runs", "/runs/1234/retry", "/runs/1234/cancel"):
                assert stranger.post(path, data={"input": "{}"}).status_code in (302, 303, 401)
            assert stranger.get("/static/ui.css").status_code == 200
        user = server.client
        listing = user.get("/")
        assert listing.status_code == 200
        assert "This file no longer validates" in listing.text
        assert "expresion" in listing.text and "did you mean" in listing.text
        assert "script-src 'self'" in listing.headers["content-security-policy"]
        refused = user.post("/workflows/broken/runs", data={"input": "{}"})
        assert refused.status_code == 422
        assert "does not validate" in refused.text
        missing = user.get("/workflows/nothing-here")
        assert missing.status_code == 404
        assert "No workflow named &#39;nothing-here&#39;" in missing.text
        assert user.get("/runs/1234").status_code == 404
        assert user.get("/runs?reason=maybe").status_code == 400


def test_a_user_logs_in_and_out_in_the_browser_and_the_old_cookie_is_dead(
    page: Page, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "broken.yaml").write_text(BROKEN_WORKFLOW)
    with _served(project, token="t0ken") as server:
        page.goto(server.url + "/runs")
        expect(page).to_have_url(re.compile(r"/login\?next=/runs$"))
        page.fill("#token", "t0ken")
        page.click("button[type=submit]")
        expect(page).to_have_url(server.url + "/runs")
        [cookie] = [c for c in page.context.cookies() if c["name"] == "statefn_session"]
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(r"/login$"))
        page.goto(server.url + "/runs")
        expect(page).to_have_url(re.compile(r"/login\?next=/runs$"))
        copied = httpx.get(server.url + "/api/runs", cookies={cookie["name"]: cookie["value"]})
        assert copied.status_code == 401
        assert "Log out" not in server.client.get("/").text  # a bearer token: no session


def _record_runs(url: str, count: int, log_lines: int) -> list[str]:
    """``count`` finished runs of workflow ``recorded``, oldest first; the newest has
    ``log_lines`` log lines."""
    ids = [f"run-{number:04d}" for number in range(count)]
    with ledger.open(url) as book:
        for number, run_id in enumerate(ids):
            book.run_queued(
                run_id, engine_id=None, plan_id=None, workflow="recorded",
                input_state=b"{}", submitted_at=f"2026-01-31T09:{number // 60:02d}:{number % 60:02d}",
            )  # fmt: skip
            reason = "fail" if number % 3 == 0 else "success"
            book.run_finished(run_id, reason=reason, state=b"{}", error=None, duration_ms=1.0)
        line: LogLine = {"step_id": None, "level": "info", "message": "tick", "time": "2026-01-31"}
        book.logs_many(ids[-1], [line] * log_lines)
    return ids


def test_runs_are_paged_newest_first_and_a_long_log_is_cut(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".statefn").mkdir(parents=True)
    ids = _record_runs(f"sqlite:///{project}/.statefn/runs.db", 120, log_lines=1005)
    newest_first = ids[::-1]
    with _served(project) as server:
        shown: list[str] = []
        path = "/runs"
        while path:
            page = server.client.get(path)
            assert page.status_code == 200
            shown += re.findall(r'<tr data-nav data-href="/runs/([^"]+)"', page.text)
            older = re.search(r'<a href="([^"]+)" rel="next">', page.text)
            path = html.unescape(older.group(1)) if older else ""
        assert shown == newest_first  # three pages: 50, 50, 20; none twice, none missed

        failed = server.client.get("/runs", params={"reason": "fail", "workflow": "recorded"})
        rows = re.findall(r'<tr data-nav data-href="/runs/([^"]+)"', failed.text)
        assert rows == [run_id for run_id in newest_first if int(run_id[4:]) % 3 == 0][:50]

        long_log = server.client.get(f"/runs/{ids[-1]}")
        assert long_log.text.count('<td class="msg">tick</td>') == 1000
        assert "Only the first 1000 lines are shown" in long_log.text

        # A browser reconnecting to a run's stream resumes after the last line it had.
        resumed = server.client.get(f"/runs/{ids[-1]}/live", headers={"Last-Event-ID": "1003"})
        assert resumed.headers["content-type"].startswith("text/event-stream")
        assert re.findall(r"id: (\d+)\nevent: log\n", resumed.text) == ["1004", "1005"]
        assert resumed.text.endswith("event: end\ndata: {}\n\n")
