"""Webhooks of ``statefn serve``: signed and unsigned triggers, paused triggers, and many
requests at once, each recorded exactly once before its 202."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import Server, start_server
from statefn.ledger import open as open_ledger
from statefn.serve import signature

SECRET = "hook-secret-value"
FLOW = {
    "workflow": {
        "name": "intake",
        "steps": [
            {"id": "signed", "webhook": {"secret": "partner"}, "next": "keep"},
            {"id": "open", "webhook": True, "next": "keep"},
            {"id": "keep", "expression": "fn(lambda s: {**s, 'data': {'kept': s['data']}})"},
        ],
    }
}


LEAKY = {
    "workflow": {
        "name": "leaky",
        "steps": [
            {"id": "hook", "webhook": True, "next": "use"},
            {
                "id": "use",
                "configuration": "partner",
                "expression": "fn(lambda s: print('secret is', s['configuration']['secret'])"
                " or s)",
            },
        ],
    }
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("hooks")
    project = folder / "project"
    project.mkdir()
    (project / "intake.json").write_text(json.dumps(FLOW))
    (project / "leaky.json").write_text(json.dumps(LEAKY))
    credentials = folder / "credentials.json"
    credentials.write_text(json.dumps({"partner": {"secret": SECRET}}))
    running = start_server(project, "--credentials", str(credentials), "--workers", "2")
    yield running
    running.stop()


def run_ids(server: Server) -> list[str]:
    with open_ledger(str(server.project / ".statefn" / "runs.db"), create=False) as book:
        return [run.run_id for run in book.runs(workflow="intake", limit=1000)]




def test_a_signed_request_starts_a_run_with_the_body_as_data(server: Server) -> None:
    body = json.dumps({"order": 7}).encode()
    response = server.client.post(
        "/hooks/intake/signed",
        content=body,
        headers={"X-Statefn-Signature": signature(SECRET.encode(), body)},
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    assert run_id in run_ids(server)  # recorded before the 202
    assert server.finished(run_id)["reason"] == "success"
    output = server.client.get(f"/api/runs/{run_id}/steps/keep/state").json()["state"]
    assert output == {"data": {"kept": {"order": 7}}}


@pytest.mark.parametrize(
    ("header", "problem"),
    [(None, "has no X-Statefn-Signature"), ("sha256=" + "0" * 64, "has a wrong X-Statefn-Signature")],
)
def test_a_request_without_the_right_signature_is_401_and_starts_no_run(
    server: Server, header: str | None, problem: str
) -> None:
    before = run_ids(server)
    headers = {"X-Statefn-Signature": header} if header else {}
    response = server.client.post("/hooks/intake/signed", content=b'{"order": 8}', headers=headers)
    assert response.status_code == 401
    assert problem in response.json()["error"]["message"]
    assert run_ids(server) == before


def test_a_signature_of_another_body_is_refused(server: Server) -> None:
    signed = signature(SECRET.encode(), b'{"order": 1}')
    response = server.client.post(
        "/hooks/intake/signed", content=b'{"order": 1000}', headers={"X-Statefn-Signature": signed}
    )
    assert response.status_code == 401


def test_an_unknown_trigger_or_a_step_that_is_no_webhook_is_404(server: Server) -> None:
    for path in ("/hooks/intake/keep", "/hooks/intake/nope", "/hooks/nope/open"):
        response = server.client.post(path, json={})
        assert response.status_code == 404, path
    message = server.client.post("/hooks/intake/keep", json={}).json()["error"]["message"]
    assert "its webhook triggers are: signed, open" in message


def test_an_empty_body_starts_a_run_with_empty_data(server: Server) -> None:
    response = server.client.post("/hooks/intake/open")
    assert response.status_code == 202
    run_id = response.json()["run_id"]
    server.finished(run_id)
    given = server.client.get(f"/api/runs/{run_id}/steps/keep/state?which=input").json()
    assert given["state"] == {"data": {}}


def test_200_concurrent_requests_are_each_recorded_once(server: Server) -> None:
    before = set(run_ids(server))

    async def send_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:
            return await asyncio.gather(
                *(client.post("/hooks/intake/open", json={"n": n}) for n in range(200))
            )

    responses = asyncio.run(send_all())
    assert [response.status_code for response in responses] == [202] * 200
    answered = [response.json()["run_id"] for response in responses]
    assert len(set(answered)) == 200
    recorded = run_ids(server)
    new = [run_id for run_id in recorded if run_id not in before]
    assert sorted(new) == sorted(answered)  # none lost, none twice, none extra
    for run_id in answered[-3:]:
        assert server.finished(run_id)["reason"] == "success"


def test_a_trigger_is_paused_while_its_file_does_not_validate(server: Server) -> None:
    path = server.project / "intake.json"
    path.write_text(json.dumps({"workflow": {**FLOW["workflow"], "start": "missing"}}))
    try:
        deadline = time.monotonic() + 10
        while server.client.post("/hooks/intake/open", json={}).status_code != 422:
            assert time.monotonic() < deadline, "the change was not picked up"
            time.sleep(0.2)
        before = run_ids(server)
        error = server.client.post("/hooks/intake/open", json={}).json()["error"]
        assert error["message"] == (
            "Workflow 'intake' (intake.json) does not validate, so its webhook trigger 'open' "
            "is paused until it does"
        )
        started = server.client.post("/api/workflows/intake/runs").json()["error"]
        assert error["errors"] == started["errors"]  # as starting it through the API says
        assert "Could not find start job: missing" in error["errors"][0]
        for step in ("keep", "nope"):  # no webhook trigger in the file, valid or not
            missing = server.client.post(f"/hooks/intake/{step}", json={})
            assert missing.status_code == 404
            assert "paused until it validates" in missing.json()["error"]["message"]
        assert run_ids(server) == before
        listed = server.client.get("/api/workflows").json()["workflows"]
        assert listed[0]["name"] == "intake"
        assert "Could not find start job: missing" in listed[0]["errors"][0]
    finally:
        path.write_text(json.dumps(FLOW))
    deadline = time.monotonic() + 10
    while server.client.post("/hooks/intake/open", json={}).status_code != 202:
        assert time.monotonic() < deadline, "the fixed file was not picked up"
        time.sleep(0.2)


def test_a_paused_trigger_is_422_with_the_token_and_a_bare_404_without(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    broken = json.loads(json.dumps(FLOW))
    broken["workflow"]["steps"][2]["expression"] = "fn(lambda s: s"  # does not compile
    (project / "intake.json").write_text(json.dumps(broken))
    running = start_server(project, token="hook-token")
    try:
        error = running.client.post("/hooks/intake/open", json={}).json()["error"]
        assert error["status"] == 422
        assert error["errors"] and error["errors"][0].startswith("intake.json#keep:1:")
        assert running.client.post("/hooks/intake/keep", json={}).status_code == 404
        stranger = httpx.Client(base_url=running.url)
        for path in ("/hooks/intake/open", "/hooks/intake/signed", "/hooks/intake/keep"):
            refused = stranger.post(path, json={})
            assert refused.status_code == 404, path
            assert refused.json()["error"] == {"status": 404, "message": "No such webhook"}
    finally:
        running.stop()


def test_a_signed_trigger_whose_secret_is_missing_is_422(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "intake.json").write_text(json.dumps(FLOW))
    running = start_server(project)
    try:
        response = running.client.post("/hooks/intake/signed", json={})
        assert response.status_code == 422
        assert "--credentials FILE" in response.json()["error"]["message"]
    finally:
        running.stop()


def test_no_answer_shows_a_credential(server: Server) -> None:
    run_id = server.client.post("/hooks/leaky/hook", json={}).json()["run_id"]
    run = server.finished(run_id)
    answers = [
        server.client.get(f"/api/runs/{run_id}"),
        server.client.get(f"/api/runs/{run_id}/logs"),
        server.client.get(f"/api/runs/{run_id}/steps/use/state?which=input"),
        server.client.get(f"/api/runs/{run_id}/steps/use/state"),
        server.client.get("/api/runs"),
        server.client.get("/api/workflows"),
    ]
    assert run["reason"] == "success"
    logs = answers[1].json()["logs"]
    assert [line["message"] for line in logs] == ["secret is ***"]
    for answer in answers:
        assert answer.status_code == 200
        assert SECRET not in answer.text
