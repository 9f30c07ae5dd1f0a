"""HTTP requests for jobs: ``get``, ``post``, ``put``, ``patch``, ``delete``, ``head``,
``request`` and, for paginated APIs, ``get_all``.

Each operation sends one request (``get_all``: one per page) and returns the state with
the parsed response body in ``data`` (the previous ``data`` appended to ``references``)
and ``state["response"] = {"status", "headers", "url", "duration_ms"}``.

Configuration (``state["configuration"]``):

- ``base_url``: relative paths are joined to it (``/patients`` → ``base_url + /patients``).
- ``username`` and ``password``: basic auth. ``access_token``: a bearer token (wins over
  basic auth). ``headers``: sent with every request.
- ``tls``: ``{"verify": true | false | "/path/to/ca.pem", "cert": "/path/to/cert.pem" |
  ["/path/to/cert.pem", "/path/to/key.pem"]}``.
- ``idempotency``: ``true`` sends the step run's idempotency key (``run_id:step_key``, the
  same when a distributed worker runs the step again) as an ``Idempotency-Key`` header on
  every request but GET, unless the request sets that header itself.

Credentials and configuration headers go only to the origin of ``base_url`` (anywhere when
there is none): an absolute URL to another host is sent without them, and so is a redirect
to another host.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar

from statefn.adaptor import AdaptorError, Operation, State, compose_next_state, operation, resolve

from ._body import BodyStream
from ._exchange import RequestOptions, exchange
from ._message import public_url, target_url
from ._paginate import Page, Paginator, lookup, next_cursor, next_link, page_number, page_offset

# Under the engine's strict isolation, a run reaches the network only through adaptors
# that say they need it (docs/engine.md).
NEEDS_NETWORK = True

__all__ = [
    "BodyStream",
    "delete",
    "get",
    "get_all",
    "head",
    "next_cursor",
    "next_link",
    "page_number",
    "page_offset",
    "patch",
    "post",
    "put",
    "request",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: An argument given as a value or as a function of state returning one.
Lazy: TypeAlias = T | Callable[[State], T]

_OPTION_DOCS = """
    Options (each may be a value or a function of state, nested inside dicts and lists too):
        query: dict of query parameters; a list value repeats the parameter, None drops it.
            They override the same keys in the path's own query string.
        headers: dict of request headers, over the configuration's headers and credentials.
        body: the request body: JSON-encoded (Content-Type application/json), except str
            and bytes, which are sent as they are.
        form: dict of form fields: URL-encoded, or multipart when ``files`` is given.
        files: dict of field name to file: text, bytes, or
            ``{"filename", "content" (or "base64"), "content_type"}``; a list for several.
        timeout: milliseconds an attempt may take, from connecting to the last byte of the
            response (default 300000, as OpenFn).
        parse_as: "json", "text", "base64" or "stream" (``data`` is a ``BodyStream`` that
            a later operation of the job reads). Default: by the response's content type
            (JSON types → json, text types → text, other types → base64, empty → None).
        error_on_status: when true (the default), a status of 400 or more raises an
            AdaptorError with ``status``, ``method``, ``url`` and a body excerpt in its
            details; when false the response is returned like any other.
        max_redirects: redirects to follow (default 5); 0 returns redirect responses.
        retries: a count, or ``{"count", "backoff_ms", "factor", "max_wait_ms"}``
            (defaults 0, 1000, 2, 60000): retry after network errors, 429 and 5xx
            statuses, waiting ``backoff_ms * factor ** n`` or what the server's
            Retry-After says (seconds or a date; more than max_wait_ms: no retry).
"""


def _with_option_docs(func: F) -> F:
    func.__doc__ = (func.__doc__ or "").rstrip() + "\n" + _OPTION_DOCS
    return func


@operation
@_with_option_docs
def request(
    method: Lazy[str],
    path: Lazy[str],
    *,
    query: Lazy[dict[str, Any] | None] = None,
    headers: Lazy[dict[str, Any] | None] = None,
    body: Any = None,
    form: Lazy[dict[str, Any] | None] = None,
    files: Lazy[dict[str, Any] | None] = None,
    timeout: Lazy[float | None] = None,
    parse_as: Lazy[str | None] = None,
    error_on_status: Lazy[bool] = True,
    max_redirects: Lazy[int | None] = None,
    retries: Lazy[int | dict[str, Any] | None] = None,
) -> Operation:
    """Send an HTTP request with any method.

    Args:
        method: the HTTP method, e.g. "GET", "OPTIONS" (any case).
        path: a path joined to ``configuration["base_url"]``, or an absolute URL.

    Example:
        request("OPTIONS", "/patients", headers={"Accept": "application/json"})
    """
    options = {
        "query": query,
        "headers": headers,
        "body": body,
        "form": form,
        "files": files,
        "timeout": timeout,
        "parse_as": parse_as,
        "error_on_status": error_on_status,
        "max_redirects": max_redirects,
        "retries": retries,
    }

    async def send(state: State) -> State:
        result = await exchange(
            resolve(method, state),
            resolve(path, state),
            RequestOptions.from_values(resolve(options, state)),
            _configuration(state),
        )
        next_state = compose_next_state(state, result.body)
        next_state["response"] = result.record()
        return next_state

    return send


def _method(method: str, summary: str, example: str) -> Callable[..., Operation]:
    """The operation factory for one HTTP method: ``request`` with ``method`` filled in, its
    signature and documentation those of ``request`` without the method."""

    def send(path: Lazy[str], **options: Any) -> Operation:
        return request(method, path, **options)

    send.__name__ = send.__qualname__ = method.lower()
    send.__doc__ = f"""{summary}

    Args:
        path: a path joined to ``configuration["base_url"]``, or an absolute URL.

    Example:
        {example}
    """
    signature = inspect.signature(request)
    send.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:]
    )
    return operation(_with_option_docs(send))


get = _method(
    "GET",
    "Send a GET request; ``data`` becomes the parsed response body.",
    'get("/patients", query={"since": S.data.last_run, "status": ["active", "new"]})',
)
post = _method(
    "POST",
    "Send a POST request; ``data`` becomes the parsed response body.",
    'post("/patients", body=S.data.patient, retries=3)',
)
put = _method(
    "PUT",
    "Send a PUT request; ``data`` becomes the parsed response body.",
    "put(lambda state: f\"/patients/{state['data']['id']}\", body=S.data)",
)
patch = _method(
    "PATCH",
    "Send a PATCH request; ``data`` becomes the parsed response body.",
    'patch("/patients/42", body={"status": "discharged"})',
)
delete = _method(
    "DELETE",
    "Send a DELETE request; ``data`` becomes the parsed response body (often None).",
    "delete(lambda state: f\"/patients/{state['data']['id']}\")",
)
head = _method(
    "HEAD",
    'Send a HEAD request; ``data`` becomes None and ``state["response"]`` has the headers.',
    'head("/exports/latest.csv")',
)


@operation
def get_all(
    path: Lazy[str],
    *,
    paginate: Lazy[Paginator],
    items: Lazy[str | None] = None,
    max_pages: Lazy[int] = 1000,
    query: Lazy[dict[str, Any] | None] = None,
    headers: Lazy[dict[str, Any] | None] = None,
    timeout: Lazy[float | None] = None,
    error_on_status: Lazy[bool] = True,
    max_redirects: Lazy[int | None] = None,
    retries: Lazy[int | dict[str, Any] | None] = None,
) -> Operation:
    """GET every page of a paginated resource; ``data`` becomes the items of all pages.

    Args:
        path: the first page: a path joined to ``configuration["base_url"]``, or a URL.
        paginate: the pagination style: ``next_link(field=None)`` (a next URL in a body
            field, else the Link header), ``page_number(param="page", ...)``,
            ``page_offset(param="offset", limit_param="limit", limit=100)`` or
            ``next_cursor(field, param="cursor")``.
        items: dotted path of the list of items in each page body (e.g. "results").
            Without it, a page body that is a list is the items; otherwise ``data`` is the
            list of page bodies.
        max_pages: stop after this many pages (default 1000).
        query, headers, timeout, error_on_status, max_redirects, retries: as for ``get``,
            for every page (page bodies are parsed as JSON).

    ``state["response"]`` is the last page's, with ``duration_ms`` for all pages and
    ``pages`` (how many were fetched). The same request twice ends the loop.

    Example:
        get_all("/patients", paginate=next_link("links.next"), items="data")
    """
    options = {
        "query": query,
        "headers": headers,
        "timeout": timeout,
        "parse_as": "json",
        "error_on_status": error_on_status,
        "max_redirects": max_redirects,
        "retries": retries,
    }

    async def collect(state: State) -> State:
        style = _paginator(resolve(paginate, state))
        items_path = resolve(items, state)
        page_limit = _page_limit(resolve(max_pages, state))
        if items_path is not None and not isinstance(items_path, str):
            raise AdaptorError(f"items must be a dotted path string, not {items_path!r}")
        first = RequestOptions.from_values(resolve(options, state))
        configuration = _configuration(state)
        started = time.perf_counter()
        target, page_query = resolve(path, state), style.first(dict(first.query or {}))
        seen: set[str] = set()
        collected: list[Any] = []
        pages = 0
        while True:
            seen.add(public_url(target_url(target, configuration, page_query)))
            page_options = dataclasses.replace(first, query=page_query)
            result = await exchange("GET", target, page_options, configuration)
            pages += 1
            page_items = _page_items(result.body, items_path, style)
            if page_items is None:
                collected.append(result.body)
            else:
                collected.extend(page_items)
            if pages >= page_limit:
                break
            page = Page(result.url, page_query, result.body, result.links, page_items)
            following = style.next(page)
            if following is None:
                break
            target = following.url or target
            page_query = following.query
            if public_url(target_url(target, configuration, page_query)) in seen:
                break
        next_state = compose_next_state(state, collected)
        next_state["response"] = {
            **result.record(),
            "duration_ms": round((time.perf_counter() - started) * 1000),
            "pages": pages,
        }
        return next_state

    return collect


def _configuration(state: State) -> dict[str, Any]:
    configuration = state.get("configuration") or {}
    if not isinstance(configuration, dict):
        raise AdaptorError(
            f"state['configuration'] must be a dict, not {type(configuration).__name__}"
        )
    return configuration


def _paginator(value: Any) -> Paginator:
    if not isinstance(value, Paginator):
        raise AdaptorError(
            f"paginate must be a pagination style, not {value!r}",
            fix='Use next_link("links.next"), page_number("page"), page_offset() '
            'or next_cursor("meta.cursor").',
        )
    return value


def _page_limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AdaptorError(f"max_pages must be a count >= 1, not {value!r}")
    return value


def _page_items(body: Any, items_path: str | None, style: Paginator) -> list[Any] | None:
    found = body if items_path is None else lookup(body, items_path)
    if isinstance(found, list):
        return found
    if items_path is not None and found is None:
        return []
    if items_path is not None:
        raise AdaptorError(f"The page's {items_path!r} is not a list: {type(found).__name__}")
    if style.needs_items:
        raise AdaptorError(
            "The page body is not a list, so the end of the pages cannot be seen",
            fix='Pass items="<dotted path of the list in each page>", e.g. items="results".',
        )
    return None
