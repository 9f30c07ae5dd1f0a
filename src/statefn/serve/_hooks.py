"""Webhooks: ``POST /hooks/{workflow}/{trigger}`` starts a run from that trigger step.

The JSON body becomes the input state's ``data``. A trigger with ``{"secret": ID}`` takes
only requests signed with that credential (``X-Statefn-Signature: sha256=<HMAC-SHA256 of
the body, hex>``); an unsigned trigger on a server with a token takes only requests that
carry the token. The answer is ``202 {"run_id"}`` once the ledger holds the run, so a
sender that got a 202 may rely on the run being there.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from ._auth import carries_token
from ._http import Unauthorized, json_response, parse_json, read_body
from ._service import NotFound, Service, signature

__all__ = ["SIGNATURE_HEADER", "receive_hook"]

SIGNATURE_HEADER = "X-Statefn-Signature"


async def receive_hook(request: Request) -> Response:
    service: Service = request.app.state.service
    token: str | None = request.app.state.token
    step_id = request.path_params["trigger"]
    try:
        workflow = service.workflow(request.path_params["workflow"])
        secret = service.webhook_secret(workflow, step_id)
    except NotFound:
        if token is not None and not carries_token(request, token):
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
    elif token is not None and not carries_token(request, token):
        raise Unauthorized(
            f"The webhook {workflow.name}/{step_id} has no secret, so it needs the server's "
            "token: send 'Authorization: Bearer TOKEN', or give the trigger "
            '{"webhook": {"secret": "credential id"}} and sign the requests'
        )
    data = parse_json(body) if body.strip() else {}
    run_id = await service.start_run(workflow.name, {"data": data}, start=step_id)
    return json_response({"run_id": run_id}, 202)
