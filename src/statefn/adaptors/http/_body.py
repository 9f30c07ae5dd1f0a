"""Reading response bodies: parse modes, streams and error excerpts."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from statefn.adaptor import AdaptorError

from ._message import public_url

__all__ = ["PARSE_MODES", "BodyStream", "body_excerpt", "parse_body"]

PARSE_MODES = ("json", "text", "base64", "stream")

#: How much of a failed response's body an error record carries.
EXCERPT_CHARS = 1000

_TEXT_TYPES = ("application/xml", "application/javascript", "application/x-www-form-urlencoded")


def parse_body(response: httpx.Response, parse_as: str | None) -> Any:
    """The read body of ``response`` as ``parse_as`` says, or as its content type suggests."""
    mode = parse_as or _mode_for(response)
    content = response.content
    if mode == "json":
        if not content.strip():
            return None
        try:
            return json.loads(content)
        except ValueError as exc:
            raise AdaptorError(
                f"Could not parse the response body as JSON: {exc}",
                details={
                    "status": response.status_code,
                    "url": public_url(response.url),
                    "content_type": response.headers.get("content-type"),
                    "body": body_excerpt(response),
                },
                fix='Use parse_as="text" to get the body as a string.',
            ) from exc
    if mode == "base64":
        return base64.b64encode(content).decode("ascii")
    if mode == "empty":
        return None
    return response.text


def _mode_for(response: httpx.Response) -> str:
    if not response.content:
        return "empty"
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return "json"
    if (
        media_type.startswith("text/")
        or media_type in _TEXT_TYPES
        or media_type.endswith("+xml")
        or response.charset_encoding is not None
    ):
        return "text"
    if not media_type:
        try:
            response.content.decode("utf-8")
        except UnicodeDecodeError:
            return "base64"
        return "text"
    return "base64"


def body_excerpt(response: httpx.Response) -> str:
    """The first ``EXCERPT_CHARS`` characters of a read body, decoded leniently."""
    return response.content[: EXCERPT_CHARS * 4].decode(
        response.encoding or "utf-8", errors="replace"
    )[:EXCERPT_CHARS]


class BodyStream:
    """A response body not yet read, handed to the job with ``parse_as="stream"``.

    Iterate it with ``async for chunk in stream`` (bytes), or ``await stream.read()``,
    ``await stream.text()``, ``await stream.json()``. It is not JSON: a later operation of the
    same job must consume it and put what it needs in state. It closes once read; an unread
    stream is closed when the run ends.
    """

    def __init__(self, response: httpx.Response, on_close: Callable[[], Awaitable[None]]) -> None:
        self._response = response
        self._on_close = on_close
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_bytes():
                yield chunk
        finally:
            await self.aclose()

    async def read(self) -> bytes:
        """The whole body as bytes."""
        try:
            return await self._response.aread()
        finally:
            await self.aclose()

    async def text(self) -> str:
        """The whole body as text, decoded with the response's charset (else UTF-8)."""
        await self.read()
        return self._response.text

    async def json(self) -> Any:
        """The whole body parsed as JSON."""
        return json.loads(await self.read())

    async def aclose(self) -> None:
        """Release the connection without reading the rest of the body."""
        if not self._closed:
            self._closed = True
            await self._response.aclose()
            await self._on_close()

    def __repr__(self) -> str:
        return f"<BodyStream {self._response.url} {self._response.status_code}>"
