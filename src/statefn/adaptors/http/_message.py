"""Turning resolved option values into the parts of an HTTP request.

Everything here is pure: a URL, headers and an encoded body from configuration and
options. Credentials (``username``/``password``, ``access_token``) and configuration
``headers`` are sent only to the origin of ``base_url`` (or anywhere when there is no
``base_url``), so an absolute URL to another host never receives them.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx

from statefn.adaptor import AdaptorError

__all__ = [
    "RequestBody",
    "credential_headers",
    "encode_body",
    "public_url",
    "request_headers",
    "target_url",
]

_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

RequestBody = dict[str, Any]


def target_url(path: Any, configuration: dict[str, Any], query: Any) -> httpx.URL:
    """``path`` joined to ``base_url`` (unless absolute), with ``query`` merged in."""
    if not isinstance(path, str):
        raise AdaptorError(
            f"The path must be a string, not {type(path).__name__}",
            fix='Pass a path such as "/patients" or a function of state returning one.',
        )
    base_url = configuration.get("base_url")
    if _ABSOLUTE.match(path):
        text = path
    elif base_url:
        text = str(base_url).rstrip("/") + "/" + path.lstrip("/") if path else str(base_url)
    else:
        raise AdaptorError(
            f"The path {path!r} is relative and the configuration has no base_url",
            fix='Set configuration["base_url"] (e.g. "https://example.org/api") '
            'or pass an absolute URL such as "https://example.org/api/patients".',
        )
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise AdaptorError(f"Invalid URL {text!r}: {exc}") from exc
    if url.scheme not in ("http", "https"):
        raise AdaptorError(
            f"Unsupported URL scheme {url.scheme!r}",
            fix="Use an http:// or https:// URL.",
        )
    if query is None:
        return url
    if not isinstance(query, dict):
        raise AdaptorError(f"query must be a dict, not {type(query).__name__}")
    # Options win over the same keys written in the path's own query string.
    return url.copy_merge_params(
        {key: _query_value(value) for key, value in query.items() if value is not None}
    )


def public_url(url: httpx.URL) -> str:
    """``url`` as it may appear in state, messages and records: without user:password."""
    return str(url.copy_with(userinfo=b"")) if url.userinfo else str(url)


def _query_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_scalar_text(item) for item in value if item is not None]
    return _scalar_text(value)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def request_headers(url: httpx.URL, configuration: dict[str, Any], headers: Any) -> httpx.Headers:
    """Configuration headers and credentials (for the base origin), then the option's headers."""
    result = httpx.Headers()
    if _credentials_apply(url, configuration.get("base_url")):
        _set_all(result, configuration.get("headers"), "configuration headers")
        authorization = _authorization(configuration)
        if authorization and "authorization" not in result:
            result["authorization"] = authorization
    _set_all(result, headers, "headers")
    return result


def credential_headers(configuration: dict[str, Any]) -> list[str]:
    """The names of the headers that carry credentials from configuration."""
    configured = configuration.get("headers")
    names = [str(name).lower() for name in configured] if isinstance(configured, dict) else []
    return ["authorization", *names]


def _set_all(target: httpx.Headers, headers: Any, what: str) -> None:
    if headers is None:
        return
    if not isinstance(headers, dict):
        raise AdaptorError(f"{what} must be a dict, not {type(headers).__name__}")
    for name, value in headers.items():
        if value is not None:
            target[str(name)] = _scalar_text(value)


def _credentials_apply(url: httpx.URL, base_url: Any) -> bool:
    if not base_url:
        return True
    try:
        base = httpx.URL(str(base_url))
    except httpx.InvalidURL:
        return False
    return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)


def _authorization(configuration: dict[str, Any]) -> str | None:
    token = configuration.get("access_token")
    if token:
        return f"Bearer {token}"
    username = configuration.get("username")
    if username:
        pair = f"{username}:{configuration.get('password') or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")
    return None


def encode_body(body: Any, form: Any, files: Any, headers: httpx.Headers) -> RequestBody:
    """The body arguments for ``httpx.AsyncClient.build_request``; sets a content type."""
    if body is not None and (form is not None or files is not None):
        raise AdaptorError(
            "Give either body or form/files, not both",
            fix="Use body for a JSON (or raw) body, form and files for a form upload.",
        )
    if form is not None or files is not None:
        return {"data": _form_fields(form), "files": _file_parts(files)}
    if body is None:
        return {}
    if isinstance(body, bytes):
        headers.setdefault("content-type", "application/octet-stream")
        return {"content": body}
    if isinstance(body, str):
        headers.setdefault("content-type", "text/plain; charset=utf-8")
        return {"content": body.encode()}
    try:
        content = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise AdaptorError(
            f"The body is not JSON: {exc}",
            fix="Pass dicts, lists, strings, numbers, booleans and None only, "
            "or a str/bytes body sent as it is.",
        ) from exc
    headers.setdefault("content-type", "application/json")
    return {"content": content}


def _form_fields(form: Any) -> dict[str, Any]:
    if form is None:
        return {}
    if not isinstance(form, dict):
        raise AdaptorError(f"form must be a dict, not {type(form).__name__}")
    return {str(key): _query_value(value) for key, value in form.items() if value is not None}


def _file_parts(files: Any) -> list[tuple[str, tuple[str, bytes, str]]] | None:
    if files is None:
        return None
    if not isinstance(files, dict):
        raise AdaptorError(f"files must be a dict, not {type(files).__name__}")
    parts = []
    for field, value in files.items():
        for item in value if isinstance(value, list) else [value]:
            parts.append((str(field), _file_part(str(field), item)))
    return parts


def _file_part(field: str, value: Any) -> tuple[str, bytes, str]:
    if isinstance(value, str | bytes):
        value = {"content": value}
    if not isinstance(value, dict):
        raise AdaptorError(
            f"files[{field!r}] must be text, bytes or a dict, not {type(value).__name__}",
            fix='Use {"filename": "a.csv", "content": "...", "content_type": "text/csv"} '
            '(or "base64" in place of "content").',
        )
    if "base64" in value:
        content = base64.b64decode(value["base64"])
    else:
        raw = value.get("content", b"")
        content = raw.encode() if isinstance(raw, str) else bytes(raw)
    return (
        str(value.get("filename", field)),
        content,
        str(value.get("content_type", "application/octet-stream")),
    )
