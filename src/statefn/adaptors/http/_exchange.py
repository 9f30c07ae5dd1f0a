"""One HTTP exchange: send a request (retrying as asked) and read its response.

``exchange`` is what every operation of the adaptor calls. It turns every failure into an
``AdaptorError`` whose message says what happened and whose ``details`` say to what:
never the request's headers, so no credential lands in a record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from statefn.adaptor import AdaptorError, idempotency_key

from ._body import PARSE_MODES, BodyStream, body_excerpt, parse_body
from ._client import ClientLease, ClientSettings, credential_scope, lease_client
from ._message import credential_headers, encode_body, public_url, request_headers, target_url
from ._retry import RetryPolicy, is_retryable_status

__all__ = ["DEFAULT_MAX_REDIRECTS", "DEFAULT_TIMEOUT_MS", "Exchange", "RequestOptions", "exchange"]

#: The longest an attempt may take, from connecting to reading the last byte (OpenFn's 300 s).
DEFAULT_TIMEOUT_MS = 300_000
DEFAULT_MAX_REDIRECTS = 5


@dataclass(frozen=True)
class RequestOptions:
    """The options of a request, resolved against state and checked."""

    query: Any = None
    headers: Any = None
    body: Any = None
    form: Any = None
    files: Any = None
    timeout_ms: float = DEFAULT_TIMEOUT_MS
    parse_as: str | None = None
    error_on_status: bool = True
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    retries: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> RequestOptions:
        """Check resolved option values and fill in the defaults of those left as None."""
        timeout = values.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise AdaptorError(
                f"timeout must be a positive number of milliseconds, not {timeout!r}",
                fix="Pass e.g. timeout=30000 for 30 seconds.",
            )
        parse_as = values.get("parse_as")
        if parse_as is not None and parse_as not in PARSE_MODES:
            raise AdaptorError(
                f"Unknown parse_as {parse_as!r}",
                fix=f"Use one of {', '.join(PARSE_MODES)}, or leave it out to parse "
                "by the response's content type.",
            )
        max_redirects = values.get("max_redirects")
        if max_redirects is not None and (
            isinstance(max_redirects, bool)
            or not isinstance(max_redirects, int)
            or max_redirects < 0
        ):
            raise AdaptorError(
                f"max_redirects must be a count >= 0, not {max_redirects!r}",
                fix="Pass 0 to return redirect responses as they are.",
            )
        return cls(
            query=values.get("query"),
            headers=values.get("headers"),
            body=values.get("body"),
            form=values.get("form"),
            files=values.get("files"),
            timeout_ms=DEFAULT_TIMEOUT_MS if timeout is None else timeout,
            parse_as=parse_as,
            error_on_status=values.get("error_on_status") is not False,
            max_redirects=DEFAULT_MAX_REDIRECTS if max_redirects is None else max_redirects,
            retries=RetryPolicy.from_option(values.get("retries")),
        )


@dataclass(frozen=True)
class Exchange:
    """A response read and parsed."""

    status: int
    headers: httpx.Headers
    url: str
    duration_ms: int
    body: Any
    links: dict[str, str]

    def record(self) -> dict[str, Any]:
        """What goes in ``state["response"]``."""
        return {
            "status": self.status,
            "headers": dict(self.headers),
            "url": self.url,
            "duration_ms": self.duration_ms,
        }


async def exchange(
    method: str, path: Any, options: RequestOptions, configuration: dict[str, Any]
) -> Exchange:
    """Send ``method path`` with ``options`` and return the parsed response."""
    if not isinstance(method, str) or not method.strip():
        raise AdaptorError(f"The method must be a string such as 'GET', not {method!r}")
    method = method.strip().upper()
    url = target_url(path, configuration, options.query)
    headers = request_headers(url, configuration, options.headers)
    key = idempotency_key()
    if configuration.get("idempotency") is True and method != "GET" and key is not None:
        headers.setdefault("idempotency-key", key)
    body = encode_body(options.body, options.form, options.files, headers)
    settings = ClientSettings(_tls(configuration), options.max_redirects)
    started = time.perf_counter()
    lease = lease_client(settings)
    scope = credential_scope(url, credential_headers(configuration))

    def build() -> httpx.Request:
        # A fresh request for each attempt: a multipart body is a stream read only once.
        return lease.client.build_request(
            method,
            url,
            headers=headers,
            timeout=options.timeout_ms / 1000,
            extensions=scope,
            **body,
        )

    handed_to_stream = False
    try:
        response = await _send_with_retries(lease, build, options)
        duration_ms = round((time.perf_counter() - started) * 1000)
        if options.error_on_status and response.status_code >= 400:
            raise _status_error(method, response)
        if options.parse_as == "stream":
            handed_to_stream = True
            parsed: Any = BodyStream(response, lease.release)
        else:
            parsed = parse_body(response, options.parse_as)
        return Exchange(
            status=response.status_code,
            headers=response.headers,
            url=public_url(response.url),
            duration_ms=duration_ms,
            body=parsed,
            links=_links(response),
        )
    finally:
        if not handed_to_stream:
            await lease.release()


def _links(response: httpx.Response) -> dict[str, str]:
    """The ``Link`` header's URLs by relation (``next``, ``prev``, ...)."""
    return {str(rel): link["url"] for rel, link in response.links.items() if rel and "url" in link}


def _tls(configuration: dict[str, Any]) -> dict[str, Any]:
    tls = configuration.get("tls") or {}
    if not isinstance(tls, dict):
        raise AdaptorError(
            f"configuration tls must be a dict, not {type(tls).__name__}",
            fix='Use {"verify": false} or {"verify": "/path/to/ca.pem", "cert": "/path/to/cert.pem"}.',
        )
    return tls


async def _send_with_retries(
    lease: ClientLease, build: Callable[[], httpx.Request], options: RequestOptions
) -> httpx.Response:
    """The final response: its body read, unless it is to be streamed."""
    attempt = 1
    while True:
        request = build()
        try:
            response = await _attempt(lease, request, options)
        except (httpx.TransportError, TimeoutError) as exc:
            wait = options.retries.wait_seconds(attempt)
            if wait is None:
                raise _network_error(request, exc, options, attempt) from exc
        except httpx.TooManyRedirects as exc:
            url = public_url(request.url)
            raise AdaptorError(
                f"{request.method} {url} was redirected more than {options.max_redirects} times",
                details={"method": request.method, "url": url},
                fix="Raise max_redirects, or check the URL for a redirect loop.",
            ) from exc
        else:
            if not is_retryable_status(response.status_code):
                return response
            wait = options.retries.wait_seconds(attempt, response.headers.get("retry-after"))
            if wait is None:
                return response
            await response.aclose()
        await asyncio.sleep(wait)
        attempt += 1


async def _attempt(
    lease: ClientLease, request: httpx.Request, options: RequestOptions
) -> httpx.Response:
    async with asyncio.timeout(options.timeout_ms / 1000):
        response = await lease.client.send(
            request, stream=True, follow_redirects=options.max_redirects > 0
        )
        streamed = options.parse_as == "stream" and response.status_code < 400
        if not streamed:
            try:
                await response.aread()
            finally:
                await response.aclose()
    return response


def _status_error(method: str, response: httpx.Response) -> AdaptorError:
    url = public_url(response.url)
    return AdaptorError(
        f"{method} {url} returned {response.status_code} {response.reason_phrase}".rstrip(),
        details={
            "status": response.status_code,
            "method": method,
            "url": url,
            "content_type": response.headers.get("content-type"),
            "body": body_excerpt(response),
        },
        fix="Pass error_on_status=False to handle error responses in the job.",
    )


def _network_error(
    request: httpx.Request, exc: Exception, options: RequestOptions, attempts: int
) -> AdaptorError:
    method, url = request.method, request.url
    target = public_url(url)
    details = {"method": method, "url": target, "attempts": attempts}
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return AdaptorError(
            f"{method} {target} timed out after {options.timeout_ms:g} ms",
            details=details,
            fix="Raise the timeout option (in milliseconds) or find out why the server is slow.",
        )
    if isinstance(exc, httpx.ConnectError):
        return AdaptorError(
            f"Could not connect to {url.scheme}://{url.netloc.decode()}: {exc}",
            details=details,
            fix="Check that the server is running and that the URL (base_url) is right.",
        )
    return AdaptorError(
        f"{method} {target} failed: {type(exc).__name__}: {exc}",
        details=details,
        fix="The connection broke before a full response arrived; retries=N may help.",
    )
