"""Webhooks: ``POST /hooks/{workflow}/{trigger}`` starts a run from that trigger step.

The JSON body becomes the input state's ``data``. A trigger with ``{"secret": ID}`` takes
only requests signed with that credential (``X-Statefn-Signature: sha256=<HMAC-SHA256 of
the body, hex>``); an unsigned trigger on a server with a token takes only requests that
carry the token. The answer is ``202 {"run_id"}`` once the ledger holds the run, so a
sender that got a 202 may rely on the run being there.

Webhooks are the one route that senders may call thousands of times a second, so its
endpoint is a bare ASGI app: no request/response wrappers around it, and the 202 is written
straight to the connection.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from statefn._state import MAX_INPUT_DEPTH

from ._auth import carries_token
from ._http import Unauthorized, parse_json, read_body
from ._service import Invalid, NotFound, Service, signature

__all__ = ["SIGNATURE_HEADER", "WebhookEndpoint"]

SIGNATURE_HEADER = "X-Statefn-Signature"


class WebhookEndpoint:
    """The ASGI endpoint of ``POST /hooks/{workflow}/{trigger}`` (an instance, which the
    router calls as ASGI). A refusal is raised as a ``ServiceError``, which the app's
    handler answers as its JSON error."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        run_id = await _start_run(Request(scope, receive))
        body = b'{"run_id":"' + run_id.encode() + b'"}'
        length = str(len(body)).encode()
        await send({"type": "http.response.start", "status": 202, "headers": [
            (b"content-type", b"application/json"), (b"content-length", length)]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


async def _start_run(request: Request) -> str:
    service: Service = request.app.state.service
    token: str | None = request.app.state.token
    step_id = request.path_params["trigger"]
    try:
        workflow = service.workflow(request.path_params["workflow"])
        secret = service.webhook_secret(workflow, step_id)
    except (NotFound, Invalid):
        if token is not None and not await carries_token(request, token):
            raise NotFound("No such webhook") from None  # the workflows are not a stranger's
        raise
    body = await read_body(request)
    if secret is not None:
        given = request.headers.get(SIGNATURE_HEADER, "")
        if not hmac.compare_digest(given.encode(), signature(secret, body).encode()):
            problem = "a wrong" if given else "no"
            raise Unauthorized(
                f"The webhook {workflow.name}/{step_id} is signed and the request has "
                f"{problem} {SIGNATURE_HEADER} header: send sha256=<HMAC-SHA256 of the body "
                "with the trigger's secret, in hex>"
            )
    elif token is not None and not await carries_token(request, token):
        raise Unauthorized(
            f"The webhook {workflow.name}/{step_id} has no secret, so it needs the server's "
            "token: send 'Authorization: Bearer TOKEN', or give the trigger "
            '{"webhook": {"secret": "credential id"}} and sign the requests'
        )
    # The body goes one level down in the input state, as its data.
    data = parse_json(body, max_depth=MAX_INPUT_DEPTH - 1) if body.strip() else {}
    return await service.start_run(workflow.name, {"data": data}, start=step_id)
