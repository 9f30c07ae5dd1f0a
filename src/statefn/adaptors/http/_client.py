"""The HTTP client an operation sends through.

Inside a run, clients come from ``run_resource``: one per run, event loop and client
settings (TLS, redirect limit), so connections are pooled across the run's requests and
never shared with another run; the runtime closes them when the run ends. Outside a run
(an operation called directly), each request gets its own client, closed after use.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from statefn.adaptor import AdaptorError, current_run, run_resource

__all__ = ["ClientLease", "ClientSettings", "credential_scope", "lease_client"]

_CREDENTIALS = "statefn_credentials"

_TLS_FIX = (
    'Set configuration["tls"] to {"verify": true | false | "/path/to/ca.pem", '
    '"cert": "/path/to/cert.pem" | ["/path/to/cert.pem", "/path/to/key.pem"]}.'
)


@dataclass(frozen=True)
class ClientSettings:
    """What a client is made with; requests with equal settings share a client."""

    tls: dict[str, Any]
    max_redirects: int

    def key(self) -> str:
        return "statefn.http.client:" + json.dumps(
            [self.tls, self.max_redirects], sort_keys=True, default=str
        )


class ClientLease:
    """A client for one request; ``release`` closes it when the request owns it."""

    def __init__(self, client: httpx.AsyncClient, owned: bool) -> None:
        self.client = client
        self.owned = owned

    async def release(self) -> None:
        if self.owned:
            await self.client.aclose()


def lease_client(settings: ClientSettings) -> ClientLease:
    """The run's client for ``settings``, or a client of its own outside a run."""
    if current_run() is None:
        return ClientLease(_make_client(settings), owned=True)
    return ClientLease(run_resource(settings.key(), lambda: _make_client(settings)), owned=False)


def _make_client(settings: ClientSettings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        verify=_ssl_context(settings.tls),
        max_redirects=settings.max_redirects,
        # Only configuration decides where a job's requests go and with which credentials:
        # the host's .netrc, proxy variables and CA overrides are not a job's to pick up.
        trust_env=False,
        event_hooks={"request": [_keep_credentials_at_home]},
    )


def credential_scope(url: httpx.URL, header_names: list[str]) -> dict[str, Any]:
    """Request extensions marking ``header_names`` as credentials meant for ``url``'s origin."""
    return {_CREDENTIALS: {"origin": _origin(url), "headers": header_names}}


async def _keep_credentials_at_home(request: httpx.Request) -> None:
    # httpx drops only Authorization on a redirect to another origin; configuration headers
    # (API keys) must not follow either. Extensions are carried over to redirect requests.
    scope = request.extensions.get(_CREDENTIALS)
    if scope and _origin(request.url) != scope["origin"]:
        for name in scope["headers"]:
            request.headers.pop(name, None)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def _ssl_context(tls: dict[str, Any]) -> ssl.SSLContext | bool:
    unknown = sorted(set(tls) - {"verify", "cert"})
    if unknown:
        raise AdaptorError(f"Unknown tls keys: {', '.join(unknown)}", fix=_TLS_FIX)
    verify = tls.get("verify", True)
    cert = tls.get("cert")
    if verify is True and cert is None:
        return True
    try:
        if isinstance(verify, str):
            context = ssl.create_default_context(cafile=verify)
        elif isinstance(verify, bool):
            context = ssl.create_default_context()
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        else:
            raise AdaptorError(f"tls verify must be a bool or a path, not {verify!r}", fix=_TLS_FIX)
        if isinstance(cert, str):
            context.load_cert_chain(cert)
        elif isinstance(cert, list) and len(cert) == 2:
            context.load_cert_chain(cert[0], cert[1])
        elif cert is not None:
            raise AdaptorError("tls cert must be a path or [cert path, key path]", fix=_TLS_FIX)
    except (OSError, ssl.SSLError):
        # One message whatever the cause: job code can put any path in its state's
        # configuration, and must not learn which files exist or what they hold.
        raise AdaptorError(
            "Could not load the TLS files named in configuration tls: each must be a "
            "readable PEM file",
            fix=_TLS_FIX,
        ) from None
    return context
