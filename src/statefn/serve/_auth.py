"""Who may use the server: a token, as a bearer header or a session cookie from ``/login``.

With a token set (required on any address other than loopback), every request must carry
it, except the few paths a stranger may see: ``/healthz`` (for load balancers),
``/openapi.json``, the login form, the UI's static files, and webhooks, which prove
themselves by their signature when their trigger has a secret (an unsigned webhook needs
the token like any API call).

A session cookie is ``<login time>.<session id>.<HMAC of both under the token>``: it proves a
login without holding the token, stops working when the token changes, and expires
``SESSION_MAX_AGE_S`` after its login. Logging out ends it for good: its id is recorded in
the ledger (``Ledger.end_session``), which every server sharing the ledger reads, so a copy
of the cookie is refused everywhere, after a restart too. It is ``HttpOnly`` and
``SameSite=Strict``, so another site cannot make a browser use it.

Wrong tokens are counted by client address (``Guesses``): an address that sent
``GUESS_LIMIT`` of them within ``GUESS_WINDOW_S`` seconds gets 429 for every request that
carries a token, right or wrong, and every login, until the oldest of those guesses is that
old; then one more guess, and so on. A short token cannot be tried at the speed of the
server, and a 429 does not say whether the guess was right.

Whatever the token, a browser on another site cannot act through this server: a request that
changes something (any method but GET, HEAD and OPTIONS; webhooks apart) whose ``Origin`` (or
``Referer``) is another site is refused with 403. Without a token (a loopback bind) the
server answers only to loopback host names, so a page that points a name of its own at
127.0.0.1 (DNS rebinding) cannot read it either.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ._http import (
    Forbidden,
    TooManyGuesses,
    Unauthorized,
    error_headers,
    error_response,
    read_form,
)

__all__ = ["COOKIE", "GUESS_LIMIT", "GUESS_WINDOW_S", "SESSION_MAX_AGE_S", "Guesses",
           "TokenAuth", "login_form", "login_submit", "logout"]  # fmt: skip

COOKIE = "statefn_session"
SESSION_MAX_AGE_S = 12 * 60 * 60
# Paths anyone may reach; webhooks check their own signature (see the module docstring).
_OPEN_PATHS = frozenset({"/healthz", "/openapi.json", "/login"})
_OPEN_PREFIXES = ("/static/", "/hooks/")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


# Wrong tokens an address may send within the window before it must wait (see the module's
# docstring); and how many addresses are remembered at once, the longest quiet forgotten
# first, so that guesses from many addresses cannot grow the server without bound.
GUESS_LIMIT = 10
GUESS_WINDOW_S = 60.0
_GUESSERS_MAX = 10_000


class Guesses:
    """The latest wrong tokens (up to ``GUESS_LIMIT``) of each client address, by time.

    Used from the server's event loop only (its one thread)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._by_address: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, address: str) -> None:
        """Raise ``TooManyGuesses`` when ``address`` must wait before it sends a token."""
        times = self._by_address.get(address)
        if times is None or len(times) < GUESS_LIMIT:
            return
        wait_s = times[0] + GUESS_WINDOW_S - self._clock()
        if wait_s > 0:
            raise TooManyGuesses(
                f"Too many wrong tokens from {address or 'this address'}: wait "
                f"{math.ceil(wait_s)} s before sending one again",
                retry_after_s=math.ceil(wait_s),
            )

    def add(self, address: str) -> None:
        """Count one wrong token from ``address``."""
        times = self._by_address.pop(address, None) or deque(maxlen=GUESS_LIMIT)
        times.append(self._clock())
        self._by_address[address] = times
        if len(self._by_address) > _GUESSERS_MAX:
            self._by_address.popitem(last=False)


def _session_mac(token: str, issued: str, session_id: str) -> str:
    message = f"statefn session {issued} {session_id}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def new_session(token: str) -> str:
    """A session cookie's value for a login now (see the module's docstring)."""
    issued, session_id = str(int(time.time())), secrets.token_hex(16)
    return f"{issued}.{session_id}.{_session_mac(token, issued, session_id)}"


def _signed_session(cookie: str, token: str) -> tuple[str, float] | None:
    """The id and expiry (Unix time) of a session cookie that ``token`` signed and that
    has not expired; ``None`` for any other value."""
    issued, _, rest = cookie.partition(".")
    session_id, _, mac = rest.partition(".")
    if not (issued.isascii() and issued.isdigit()):
        return None
    expected = _session_mac(token, issued, session_id)
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        return None
    expires = int(issued) + SESSION_MAX_AGE_S
    return (session_id, expires) if int(issued) <= time.time() < expires else None


async def _live_session(request: Request, cookie: str, token: str) -> bool:
    """Whether ``cookie`` is a signed, unexpired session that was not logged out."""
    signed = _signed_session(cookie, token)
    if signed is None:
        return False
    ended: bool = await asyncio.to_thread(request.app.state.service.ledger.session_ended, signed[0])
    return not ended


def _address(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def _counted(request: Request, right: bool) -> bool:
    """``right``, for a request that offered a token: refused with ``TooManyGuesses``
    (right or wrong) when its address must wait, and counted as a guess when wrong."""
    guesses: Guesses = request.app.state.guesses
    address = _address(request)
    guesses.check(address)
    if not right:
        guesses.add(address)
    return right


async def carries_token(request: Request, token: str) -> bool:
    """Whether the request carries ``token``, as a bearer header or a live session cookie;
    one that offers either is ``_counted``."""
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    given = bearer.strip() if scheme.lower() == "bearer" else None
    cookie = request.cookies.get(COOKIE)
    if given is None and cookie is None:
        return False  # nothing offered: not a guess
    right = (given is not None and hmac.compare_digest(given.encode(), token.encode())) or (
        cookie is not None and await _live_session(request, cookie, token)
    )
    return _counted(request, right)


class TokenAuth:
    """ASGI middleware: 401 (JSON for the API, a redirect to the login form for pages) for
    a request without the token. ``token=None`` lets every request through (loopback)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        # The path as the router reads it (no URL is built: this runs on every request).
        path: str = scope["path"]
        refusal = _foreign(request, path, loopback_only=self.token is None)
        if refusal is not None:
            await error_response(Forbidden(refusal))(scope, receive, send)
            return
        if self.token is None:
            await self.app(scope, receive, send)
            return
        open_path = path in _OPEN_PATHS or path.startswith(_OPEN_PREFIXES)
        try:
            admitted = open_path or await carries_token(request, self.token)
        except TooManyGuesses as guessing:
            await error_response(guessing)(scope, receive, send)
            return
        if admitted:
            await self.app(scope, receive, send)
            return
        response: Response
        if path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
            response = error_response(
                Unauthorized(
                    "This server needs its token: send 'Authorization: Bearer TOKEN' or log "
                    "in at /login"
                )
            )
        else:
            response = RedirectResponse(f"/login?next={_local(request.url.path)}", status_code=303)
        await response(scope, receive, send)


def _host_name(host: str) -> str:
    """The name part of a ``Host`` value (``[::1]:8787`` -> ``[::1]``)."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.partition(":")[0]


def _foreign(request: Request, path: str, *, loopback_only: bool) -> str | None:
    """Why a request that comes from another site (or, on loopback, through a host name
    that is not loopback) is refused, or None."""
    host = request.headers.get("host", "")
    if loopback_only and _host_name(host).lower() not in _LOOPBACK_NAMES:
        return (
            f"This server answers only to localhost, 127.0.0.1 and [::1], not {host!r}: "
            "serve on another address with --host and --token"
        )
    if request.method in _SAFE_METHODS or path.startswith("/hooks/"):
        return None
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is not None and urlsplit(source).netloc != host:
        return f"A request from another site ({source}) cannot change anything here"
    return None


def _local(target: str) -> str:
    """``target`` if it is a path on this server, else ``/``: a login never sends a user to
    another site."""
    parts = urlsplit(target)
    # Browsers read a backslash as a slash (so "/" and a backslash lead to another host):
    # a backslash or a control character is refused too.
    odd = "\\" in target or any(ord(char) < 32 for char in target)
    if parts.scheme or parts.netloc or odd or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>statefn: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 24rem; margin: 4rem auto">
<h1 style="font-size: 1.3rem">statefn serve</h1>
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label for="token">Token</label><br>
<input id="token" name="token" type="password" autofocus autocomplete="current-password"
 style="width: 100%; margin: .4rem 0 1rem">
<p style="color: #b00020">{problem}</p>
<button type="submit">Log in</button>
</form>
<p style="color: #555; font-size: .9rem">The token is the one given to <code>statefn serve
--token</code> (or <code>$STATEFN_TOKEN</code>).</p>
</body></html>
"""


def _form(target: str, problem: str = "", status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        _FORM.format(next=html.escape(_local(target)), problem=html.escape(problem)), status
    )


async def login_form(request: Request) -> Response:
    return _form(request.query_params.get("next", "/"))


async def login_submit(request: Request) -> Response:
    form = await read_form(request)
    target = form.get("next") or "/"
    token: str | None = request.app.state.token
    given = form.get("token", "")
    if token is None:
        return RedirectResponse(_local(target), status_code=303)
    try:
        right = _counted(request, hmac.compare_digest(given.encode(), token.encode()))
    except TooManyGuesses as guessing:
        waiting = _form(target, guessing.message, status=guessing.status)
        waiting.headers.update(error_headers(guessing))
        return waiting
    if not right:
        return _form(target, "That is not the server's token.", status=401)
    response = RedirectResponse(_local(target), status_code=303)
    response.set_cookie(
        COOKIE,
        new_session(token),
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    """End the session for good (see the module's docstring), then forget the cookie."""
    token: str | None = request.app.state.token
    cookie = request.cookies.get(COOKIE)
    signed = _signed_session(cookie, token) if cookie and token else None
    if signed is not None:
        session_id, expires = signed
        await asyncio.to_thread(request.app.state.service.ledger.end_session, session_id, expires)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
