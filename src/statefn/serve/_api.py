"""The JSON API (contract section 12); ``/openapi.json`` describes every route here.

Reads run on Starlette's thread pool (the ledger's driver blocks); starting, retrying and
cancelling runs are async, since they wait for the ledger's write without holding a thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from statefn.ledger import STATUSES, StateWithheldError

from ._cron import Scheduler
from ._http import BadRequest, json_response, read_json, whole_number
from ._service import NotFound, Service

__all__ = [
    "cancel_run",
    "get_run",
    "healthz",
    "list_runs",
    "list_workflows",
    "retry_run",
    "run_logs",
    "start_run",
    "step_state",
]

MAX_PAGE = 500


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def list_workflows(request: Request) -> Response:
    service = _service(request)
    scheduler: Scheduler = request.app.state.scheduler
    workflows = []
    for workflow in service.workflows():
        last = service.last_run(workflow.name)
        shown = workflow.to_dict()
        for trigger in shown["triggers"]:
            tick = scheduler.next_tick(workflow.name, trigger["step"])
            trigger["next_tick"] = None if tick is None else tick.isoformat()
        workflows.append({**shown, "last_run": None if last is None else last.to_dict()})
    return json_response({"workflows": workflows})


async def start_run(request: Request) -> Response:
    state = await read_json(request, default=None)
    if state is not None and not isinstance(state, dict):
        raise BadRequest(
            f'The input state must be a JSON object such as {{"data": {{}}}}, got '
            f"{type(state).__name__}"
        )
    run_id = await _service(request).start_run(request.path_params["name"], state)
    return json_response({"run_id": run_id}, 202)


def _limit(text: str) -> int:
    if not text:
        return 50
    limit = whole_number(text)
    if limit is None or not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_PAGE}, got {text!r}")
    return limit


def list_runs(request: Request) -> Response:
    # An empty parameter (?workflow=&reason=) is an absent one, as a form sends it.
    query = request.query_params
    reason = query.get("reason") or None
    if reason is not None and reason not in STATUSES:
        raise BadRequest(f"reason must be one of {', '.join(STATUSES)}, got {reason!r}")
    limit = _limit(query.get("limit", ""))
    before = query.get("before") or None
    service = _service(request)
    # One run more than the page: whether there is a next page, without a query for it.
    runs = service.ledger.runs(
        reason=reason, workflow=query.get("workflow") or None, before=before, limit=limit + 1
    )
    if not runs and before is not None:
        _check_before(service, before)
    page = runs[:limit]
    after = page[-1].run_id if len(runs) > limit else None
    return json_response({"runs": [run.to_dict() for run in page], "next_before": after})


def _check_before(service: Service, run_id: str) -> None:
    """Refuse a ``before`` that names no run (the ledger would answer an empty page)."""
    try:
        service.run(run_id)
    except NotFound:
        raise BadRequest(
            f"before must be the id of a run (the next_before of the previous page); no run "
            f"{run_id!r} is in the ledger"
        ) from None


def get_run(request: Request) -> Response:
    return json_response(_service(request).run(request.path_params["run_id"]).to_dict())


def run_logs(request: Request) -> Response:
    service = _service(request)
    run_id = request.path_params["run_id"]
    service.run(run_id)
    if "text/event-stream" in request.headers.get("accept", ""):
        after = request.headers.get("last-event-id", "0")
        return StreamingResponse(
            _events(service, run_id, whole_number(after) or 0),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return json_response({"logs": [line.to_dict() for line in service.ledger.logs(run_id)]})


async def _events(service: Service, run_id: str, after: int) -> AsyncIterator[str]:
    async for kind, payload in service.follow(run_id, after=after):
        event_id = f"id: {payload['seq']}\n" if kind == "log" else ""
        yield f"event: {kind}\n{event_id}data: {orjson.dumps(payload).decode()}\n\n"


def step_state(request: Request) -> Response:
    service = _service(request)
    run_id, key = request.path_params["run_id"], request.path_params["key"]
    which = request.query_params.get("which", "output")
    if which not in ("input", "output"):
        raise BadRequest(f"which must be input or output, got {which!r}")
    service.step(run_id, key)
    try:
        state = service.ledger.state(run_id, key, which="input" if which == "input" else "output")
    except StateWithheldError as error:
        return json_response({"state": None, "withheld": error.withheld})
    return json_response({"state": state, "withheld": None})


async def retry_run(request: Request) -> Response:
    run_id = await _service(request).retry(
        request.path_params["run_id"], request.query_params.get("from") or None
    )
    return json_response({"run_id": run_id}, 202)


async def cancel_run(request: Request) -> Response:
    await _service(request).cancel(request.path_params["run_id"])
    return json_response({"cancelled": True}, 202)


def healthz(request: Request) -> Response:
    problem = _service(request).problem()
    if problem is not None:
        return json_response({"status": "unavailable", "problem": problem}, 503)
    return json_response({"status": "ok"})
