"""The web UI of ``statefn serve``: server-rendered pages over a ``Service``.

    /                          the workflows, each with its step graph, triggers, last run
    /workflows/{name}          one workflow: graph, steps, recent runs, a form to start a run
    /runs                      runs newest first, filtered by workflow and status, paged by id
    /runs/{id}                 one run: graph with outcomes, steps, a step's states and diff, log
    /runs/live, /runs/{id}/live   server-sent events that keep those two pages current
    /static/ui.css, ui.js      the page style and the script (every page works without it)

Pages are Jinja templates with autoescaping on, and the states and graphs they embed are
escaped where they are built (``_tree``, ``_graph``): job output is data, never markup. The
Content-Security-Policy lets nothing run but ``/static/ui.js``. Nothing here reads a
credential: states in the ledger have no ``configuration`` and log lines are masked.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from statefn.ledger import STATUSES, RunRecord

from ._auth import COOKIE
from ._graph import draw
from ._http import BadRequest, parse_json, read_form, whole_number
from ._service import Service, ServiceError
from ._views import StepView, WorkflowView, environment, plan_of, step_view, workflow_view

__all__ = ["PAGE_SIZE", "ui_routes"]

PAGE_SIZE = 50
RECENT_RUNS = 10
# A run page shows at most this many log lines; the API gives them all.
LOG_LINES = 1000
# How often the runs page's event stream looks for new runs or changed statuses.
RUNS_POLL_S = 1.0
# An event stream ends after this long and the browser opens a new one, so that a stream
# never outlives a server that is shutting down by much.
STREAM_LIFETIME_S = 300.0
_DEFAULT_INPUT = '{\n  "data": {}\n}'
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


class _Pages:
    """The handlers, bound to one service."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.env = environment()
        # Each route's name -> its path with {parameters}; set by ui_routes.
        self.paths: dict[str, str] = {}

    def path(self, request: Request, name: str, /, **params: str) -> str:
        """The path of route ``name`` (no scheme or host, so the pages work behind a
        proxy). Formatted here: Starlette's ``url_for`` walks every route on each call,
        which took most of the time of a page of 50 runs."""
        quoted = {key: quote(str(value), safe="") for key, value in params.items()}
        root: str = request.scope.get("root_path", "")
        return root + self.paths[name].format(**quoted)

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("nav", "")
        context.setdefault("focus_step", "")
        context["signed_in"] = COOKIE in request.cookies and request.app.state.token is not None
        context["url_for"] = functools.partial(self.path, request)
        html = self.env.get_template(name).render(context)
        return HTMLResponse(html, status, headers=_HEADERS)

    def failure(self, request: Request, error: ServiceError) -> Response:
        titles = {400: "Bad request", 404: "Not found", 409: "Conflict", 422: "Cannot run"}
        return self.render(
            request,
            "error.html",
            error.status,
            title=titles.get(error.status, "Error"),
            message=error.message,
            fix=error.details.get("fix", ""),
        )

    # -- workflows -------------------------------------------------------------------------

    async def workflows(self, request: Request) -> Response:
        await self.service.refresh()

        def views() -> list[WorkflowView]:
            return [
                workflow_view(workflow, self.service.last_run(workflow.name))
                for workflow in self.service.workflows()
            ]

        shown = await asyncio.to_thread(views)
        project = self.service.project.root.as_posix()
        return self.render(
            request, "workflows.html", workflows=shown, project=project, nav="workflows"
        )

    async def workflow(
        self, request: Request, *, input_text: str = _DEFAULT_INPUT, input_error: str = "",
        status: int = 200,
    ) -> Response:  # fmt: skip
        await self.service.refresh()
        try:
            workflow = self.service.workflow(request.path_params["name"])
        except ServiceError as error:
            return self.failure(request, error)
        recent = await asyncio.to_thread(
            self.service.ledger.runs, workflow=workflow.name, limit=RECENT_RUNS
        )
        return self.render(
            request,
            "workflow.html",
            status,
            workflow=workflow_view(workflow),
            recent=recent,
            input_text=input_text,
            input_error=input_error,
            nav="workflows",
        )

    async def start(self, request: Request) -> Response:
        name = request.path_params["name"]
        form: dict[str, str] = {}
        try:
            await self.service.refresh()  # a file saved a moment ago is what runs
            form = await read_form(request)
            text = form.get("input", "").strip() or _DEFAULT_INPUT
            state = parse_json(text.encode())
            if not isinstance(state, dict):
                raise BadRequest('The input state must be a JSON object, such as {"data": {}}')
            run_id = await self.service.start_run(name, state)
        except ServiceError as error:
            if error.status == 404:
                return self.failure(request, error)
            return await self.workflow(
                request,
                input_text=form.get("input", ""),
                input_error=error.message,
                status=error.status,
            )
        return RedirectResponse(self.path(request, "ui-run", run_id=run_id), 303)

    # -- runs ------------------------------------------------------------------------------

    async def runs(self, request: Request) -> Response:
        query = _RunsQuery.read(request)
        if query.problem:
            return self.failure(request, BadRequest(query.problem))
        found = await asyncio.to_thread(query.fetch, self.service, PAGE_SIZE + 1)
        older = found[PAGE_SIZE - 1].run_id if len(found) > PAGE_SIZE else None
        live = None
        if query.before is None:
            live = f"{self.path(request, 'ui-runs-live')}?{query.encoded()}"
        return self.render(
            request,
            "runs.html",
            runs=found[:PAGE_SIZE],
            workflow=query.workflow or "",
            reason=query.reason or "",
            before=query.before,
            older=older,
            query=query.encoded_with,
            live_url=live,
            statuses=STATUSES,
            workflow_names=[workflow.name for workflow in self.service.workflows()],
            nav="runs",
        )

    async def runs_live(self, request: Request) -> Response:
        query = _RunsQuery.read(request)

        async def changes() -> AsyncIterator[bytes]:
            seen = None
            async for _ in _ticks(RUNS_POLL_S):
                found = await asyncio.to_thread(query.fetch, self.service, PAGE_SIZE)
                now = [(run.run_id, run.status) for run in found]
                if seen is not None and now != seen:
                    yield _event("refresh", {})
                else:
                    yield b": waiting\n\n"
                seen = now

        return StreamingResponse(changes(), media_type="text/event-stream", headers=_SSE_HEADERS)

    async def run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        key = request.query_params.get("step") or None
        try:
            record, chosen, logs = await asyncio.to_thread(self._run_parts, run_id, key)
        except ServiceError as error:
            return self.failure(request, error)
        workflow = self.service.project.get(record.workflow or "")
        plan = None if workflow is None else plan_of(workflow)
        graph = None
        if plan is not None:
            reasons = {step.step_id: step.reason or "running" for step in record.steps}
            keys = {step.step_id: step.key for step in record.steps}
            base = self.path(request, "ui-run", run_id=run_id)

            def href(step_id: str) -> str | None:
                found = keys.get(step_id)
                return None if found is None else f"{base}?{urlencode({'step': found})}"

            graph = draw(plan, reasons, href)
        live = None
        if record.reason is None:
            after = logs[-1].seq if logs else 0
            live = f"{self.path(request, 'ui-run-live', run_id=run_id)}?after={after}"
        return self.render(
            request,
            "run.html",
            run=record,
            graph=graph,
            workflow_known=workflow is not None,
            step=chosen.record,
            step_input=chosen.input,
            step_output=chosen.output,
            changes=chosen.changes,
            diff_note=chosen.diff_note,
            logs=logs[:LOG_LINES],
            logs_cut=len(logs) > LOG_LINES,
            retry_steps=[step.key for step in record.steps],
            live_url=live,
            focus_step=chosen.record.step_id if chosen.record else "",
            nav="runs",
        )

    def _run_parts(self, run_id: str, key: str | None) -> tuple[RunRecord, StepView, list[Any]]:
        record = self.service.run(run_id)
        logs = self.service.ledger.logs(run_id, limit=LOG_LINES + 1)
        return record, step_view(self.service, record, key), logs

    async def run_live(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        # A browser that reconnects (a stream ends after STREAM_LIFETIME_S) says the id of
        # the last event it had: the seq of its last log line, so no line comes twice.
        after = request.headers.get("last-event-id") or request.query_params.get("after", "0")
        await asyncio.to_thread(self.service.run, run_id)  # 404 for an unknown run
        follow = self.service.follow(run_id, after=whole_number(after) or 0)

        async def events() -> AsyncIterator[bytes]:
            async for kind, payload in _until(follow, STREAM_LIFETIME_S):
                if kind == "log":
                    yield _event("log", payload, event_id=payload["seq"])
                else:
                    yield _event("end" if kind == "end" else "refresh", {})

        return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE_HEADERS)

    async def retry(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            await self.service.refresh()  # the job file fixed a moment ago is what runs
            form = await read_form(request)
            new_id = await self.service.retry(run_id, form.get("from") or None)
        except ServiceError as error:
            return self.failure(request, error)
        return RedirectResponse(self.path(request, "ui-run", run_id=new_id), 303)

    async def cancel(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            await self.service.cancel(run_id)
        except ServiceError as error:
            return self.failure(request, error)
        return RedirectResponse(self.path(request, "ui-run", run_id=run_id), 303)


@dataclass(frozen=True)
class _RunsQuery:
    """The filters of the runs page, from its query string."""

    workflow: str | None
    reason: str | None
    before: str | None
    problem: str = ""

    @classmethod
    def read(cls, request: Request) -> _RunsQuery:
        params = request.query_params
        reason = params.get("reason") or None
        problem = ""
        if reason is not None and reason not in STATUSES:
            problem = f"Unknown status {reason!r}: use one of {', '.join(STATUSES)}"
        return cls(params.get("workflow") or None, reason, params.get("before") or None, problem)

    def fetch(self, service: Service, limit: int) -> list[RunRecord]:
        return service.ledger.runs(
            workflow=self.workflow, reason=self.reason, before=self.before, limit=limit
        )

    def encoded(self) -> str:
        return self.encoded_with(before=None)

    def encoded_with(self, before: str | None) -> str:
        pairs = {"workflow": self.workflow, "reason": self.reason, "before": before}
        return urlencode({key: value for key, value in pairs.items() if value})


def _event(kind: str, payload: dict[str, Any], event_id: int | None = None) -> bytes:
    head = b"" if event_id is None else b"id: %d\n" % event_id
    return head + b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


async def _ticks(every: float) -> AsyncIterator[None]:
    """Ticks every ``every`` seconds, for ``STREAM_LIFETIME_S`` in all."""
    loop = asyncio.get_running_loop()
    end = loop.time() + STREAM_LIFETIME_S
    while loop.time() < end:
        yield None
        await asyncio.sleep(every)


async def _until(
    source: AsyncIterator[tuple[str, dict[str, Any]]], seconds: float
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The items of ``source`` for at most ``seconds``; then ``source`` is closed."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    try:
        while True:
            try:
                item = await asyncio.wait_for(anext(source), end - loop.time())
            except (StopAsyncIteration, TimeoutError):
                return
            yield item
    finally:
        if isinstance(source, AsyncGenerator):
            await source.aclose()


def ui_routes(service: Service) -> list[BaseRoute]:
    """The UI's routes over ``service``, to mount at the root of the server."""
    pages = _Pages(service)
    table: list[tuple[str, str, Callable[[Request], Awaitable[Response]], str]] = [
        ("ui-workflows", "/", pages.workflows, "GET"),
        ("ui-workflow", "/workflows/{name}", pages.workflow, "GET"),
        ("ui-start", "/workflows/{name}/runs", pages.start, "POST"),
        ("ui-runs", "/runs", pages.runs, "GET"),
        ("ui-runs-live", "/runs/live", pages.runs_live, "GET"),
        ("ui-run", "/runs/{run_id}", pages.run, "GET"),
        ("ui-run-live", "/runs/{run_id}/live", pages.run_live, "GET"),
        ("ui-retry", "/runs/{run_id}/retry", pages.retry, "POST"),
        ("ui-cancel", "/runs/{run_id}/cancel", pages.cancel, "POST"),
    ]
    # With the paths of the app's own routes that the pages link to.
    pages.paths = {name: path for name, path, _, _ in table} | {
        "ui-static": "/static/{path}",
        "logout": "/logout",
    }
    static = StaticFiles(packages=[("statefn.serve", "static")])
    return [
        *(Route(path, page, methods=[method], name=name) for name, path, page, method in table),
        Mount("/static", static, name="ui-static"),
    ]
