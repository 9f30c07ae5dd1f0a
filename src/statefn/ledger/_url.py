"""Ledger URLs: which database a URL names, and how to show it without its password.

    runs.db                              a SQLite file (a bare path, relative or absolute)
    sqlite:///relative/path.db           a SQLite file, relative to the working directory
    sqlite:////abs/path.db               a SQLite file, absolute
    postgresql://user:pw@host:5432/db    PostgreSQL (also postgres://)

Every message about a URL shows it masked: the password, in the user part or in a
``password=`` query parameter, becomes ``***``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from statefn._errors import LedgerError
from statefn._masking import MASK

__all__ = ["LedgerURL", "mask_url", "parse_url"]

Dialect = Literal["sqlite", "postgresql"]

_FORMS = "sqlite:///path.db, a file path, or postgresql://user@host:5432/database"


@dataclass(frozen=True)
class LedgerURL:
    """A parsed ledger URL: the dialect, what the driver connects to, and the URL to show."""

    dialect: Dialect
    target: str  # the SQLite file path, or the PostgreSQL URL as given
    masked: str
    password: str | None

    def mask(self, text: str) -> str:
        """``text`` (a driver's message, say) with the URL's password replaced by ``***``."""
        return text.replace(self.password, MASK) if self.password else text


def mask_url(url: str) -> str:
    """``url`` with any password (``user:PASSWORD@`` or ``?password=``) replaced by ``***``."""
    head, mark, query = url.partition("?")
    try:
        password = urlsplit(head).password
    except ValueError:
        # Unparseable: show the scheme only, in case a password is in the rest.
        return head.split("://", 1)[0] + "://" + MASK if "://" in head else MASK
    if password:
        head = head.replace(f":{password}@", f":{MASK}@", 1)
    return head + mark + re.sub(r"(^|&)password=[^&#]*", rf"\1password={MASK}", query)


def parse_url(url: str) -> LedgerURL:
    """Parse ``url``; a ``LedgerError`` (URL masked) says what is wrong and how to write it."""
    masked = mask_url(url)
    if not url.strip():
        raise LedgerError("The ledger URL is empty", fix=f"Give {_FORMS}")
    if "://" not in url:
        return LedgerURL("sqlite", url, masked, None)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError as error:
        raise LedgerError(
            f"The ledger URL {masked} is malformed: {error}", fix=f"Give {_FORMS}"
        ) from None
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
            raise LedgerError(
                f"The ledger URL {masked} does not name a SQLite file",
                fix="Write sqlite:///relative/path.db or sqlite:////absolute/path.db",
            )
        return LedgerURL("sqlite", parts.path[1:], masked, None)
    if scheme in ("postgresql", "postgres"):
        password = parts.password or dict(parse_qsl(parts.query)).get("password")
        return LedgerURL("postgresql", url, masked, password or None)
    raise LedgerError(
        f"The ledger URL {masked} has an unknown scheme {parts.scheme!r}",
        fix=f"Give {_FORMS}",
    )
