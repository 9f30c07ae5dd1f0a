"""What every endpoint shares: JSON responses, JSON errors, and reading a bounded JSON body.

Every error leaves as ``{"error": {"status": N, "message": "...", ...details}}`` with its
HTTP status; no traceback ever reaches a client.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import Response

from statefn._state import MAX_INPUT_DEPTH, nesting_depth

from ._service import ServiceError

__all__ = [
    "DEFAULT_MAX_BODY",
    "BadRequest",
    "Forbidden",
    "PayloadTooLarge",
    "TooManyGuesses",
    "Unauthorized",
    "error_headers",
    "error_response",
    "json_response",
    "parse_json",
    "read_body",
    "read_form",
    "read_json",
    "whole_number",
]

DEFAULT_MAX_BODY = 1024 * 1024  # bytes of a request body: webhooks and input states
# A 503 (the ledger or the broker did not take the run, or too many runs wait for a worker)
# is for a while: a sender may try again after this many seconds.
RETRY_AFTER_S = 5
_ERROR_HEADERS = {401: {"WWW-Authenticate": "Bearer"}, 503: {"Retry-After": str(RETRY_AFTER_S)}}
_WHOLE = re.compile(r"[0-9]{1,18}")


class BadRequest(ServiceError):
    """The request is malformed: a body that is not JSON, a parameter of the wrong form."""

    status = 400


class Unauthorized(ServiceError):
    """No token, a wrong token, or a webhook whose signature does not match."""

    status = 401


class Forbidden(ServiceError):
    """A request from another site, or for a host name this server does not answer to."""

    status = 403


class PayloadTooLarge(ServiceError):
    """The request body is over the server's limit (``--max-body``)."""

    status = 413


class TooManyGuesses(ServiceError):
    """The client's address sent too many wrong tokens of late; ``details["retry_after_s"]``
    says when it may send one again (also as the ``Retry-After`` header)."""

    status = 429


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status, media_type="application/json")


def error_headers(error: ServiceError) -> dict[str, str]:
    """The headers that go with ``error``, in whatever form it is answered: its status's,
    or ``Retry-After`` from the error itself when it says when to try again."""
    if "retry_after_s" in error.details:
        return {"Retry-After": str(error.details["retry_after_s"])}
    return _ERROR_HEADERS.get(error.status, {})


def error_response(error: ServiceError) -> Response:
    body = {"status": error.status, "message": error.message, **error.details}
    return Response(
        orjson.dumps({"error": body}),
        error.status,
        error_headers(error),
        media_type="application/json",
    )


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 past the limit (checked as it arrives, not only by
    its declared length)."""
    limit: int = request.app.state.max_body
    declared = request.headers.get("content-length", "")
    length = whole_number(declared)
    if length is not None and length > limit:
        raise _too_large(limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is over the limit of {limit} bytes",
        limit=limit,
        fix="Send less, or start the server with a larger --max-body",
    )


def parse_json(body: bytes, *, max_depth: int = MAX_INPUT_DEPTH) -> Any:
    """The JSON value of ``body``; 400 with the line, column and position of the error, or
    when the value nests more than ``max_depth`` levels of arrays and objects (a deeper
    state could not be recorded or run, so its body is refused when it is read)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(
            f"The body is not valid JSON: {error.msg} at line {error.lineno} column "
            f"{error.colno} (position {error.pos})",
            line=error.lineno,
            column=error.colno,
            position=error.pos,
        ) from None
    # Only a body with more brackets than the limit can nest deeper: most are not walked.
    if body.count(b"[") + body.count(b"{") > max_depth:
        depth = nesting_depth(value)
        if depth > max_depth:
            raise BadRequest(
                f"The JSON body is nested {depth} levels deep; at most {max_depth} levels "
                "are accepted",
                depth=depth,
                max_depth=max_depth,
                fix="Flatten its deepest parts, or send them as strings of JSON",
            )
    return value


async def read_json(request: Request, default: Any) -> Any:
    """The request's JSON body, or ``default`` when it is empty."""
    body = await read_body(request)
    return default if not body.strip() else parse_json(body)


async def read_form(request: Request) -> dict[str, str]:
    """A posted form (``application/x-www-form-urlencoded``) within the body limit, the last
    value of each field."""
    body = await read_body(request)
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[-1] for key, values in fields.items()}


def whole_number(text: str) -> int | None:
    """``text`` as a whole number when it is one written in ASCII digits (at most 18 of them),
    else None: ``str.isdigit`` also takes digits such as "²", which ``int`` refuses."""
    return int(text) if _WHOLE.fullmatch(text) else None
