"""Masking: credential values never appear in logs, events or error records.

Every string value of 4 or more characters in a step's configuration (nested too) is a
secret, and so is the base64 of ``username:password``. Each secret is also masked in every
form printing or encoding it whole gives: ``repr`` and ``ascii`` (how a dict or a list of
it prints), the ``repr`` of its UTF-8 bytes, URL-encoded, JSON-escaped and base64 (standard
and URL-safe, with or without padding). A longer secret is masked where a message cut it
short, too (Python shows at most 200 characters of a value in ``int('...')`` and others):
any run of its first ``PREFIX_LENGTH`` characters or more.

What masking cannot catch is a secret transformed: another part of it, its hash, its letters
reordered, or its base64 inside the base64 of a longer text.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "Masker"]

MASK = "***"
MIN_SECRET_LENGTH = 4
PREFIX_LENGTH = 32


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _forms(secret: str) -> Iterable[str]:
    # Imported here: only steps with secrets need it, and it costs ~3 ms at start-up.
    from urllib.parse import quote, quote_plus

    raw = secret.encode()
    yield secret
    yield repr(secret)[1:-1]
    yield ascii(secret)[1:-1]
    yield repr(raw)[2:-1]
    yield quote(secret, safe="")
    yield quote_plus(secret, safe="")
    yield json.dumps(secret)[1:-1]
    yield json.dumps(secret, ensure_ascii=False)[1:-1]
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        yield encoded
        yield encoded.rstrip("=")


def _without_cut_forms(text: str, form: str) -> str:
    """``text`` with each run of ``form``'s first ``PREFIX_LENGTH`` characters or more
    replaced (what is left of a long secret a message cut short)."""
    head = form[:PREFIX_LENGTH]
    start = text.find(head)
    if start < 0:
        return text
    parts, done = [], 0
    while start >= 0:
        shown = text[start : start + len(form)]
        end = start + next(
            (
                at
                for at, (got, wanted) in enumerate(zip(shown, form, strict=False))
                if got != wanted
            ),
            len(shown),
        )
        parts += [text[done:start], MASK]
        done = end
        start = text.find(head, end)
    parts.append(text[done:])
    return "".join(parts)


class Masker:
    """Replaces secret values with ``***`` in strings and JSON-like values."""

    __slots__ = ("_long", "_pattern")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = {form for secret in secrets for form in _forms(secret)}
        forms = {form for form in forms if len(form) >= MIN_SECRET_LENGTH}
        # Longest first, so that a secret containing another is masked whole.
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._long = [form for form in ordered if len(form) > PREFIX_LENGTH]

    @classmethod
    def for_configuration(cls, configuration: Any) -> Masker:
        """A masker for every secret in a configuration object."""
        secrets = [s for s in _strings(configuration) if len(s) >= MIN_SECRET_LENGTH]
        if isinstance(configuration, Mapping):
            username, password = configuration.get("username"), configuration.get("password")
            if isinstance(username, str) and isinstance(password, str):
                secrets.append(base64.b64encode(f"{username}:{password}".encode()).decode())
        return cls(secrets)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        """``text`` with every secret replaced."""
        if self._pattern is None:
            return text
        text = self._pattern.sub(MASK, text)
        for form in self._long:
            text = _without_cut_forms(text, form)
        return text

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value with secrets replaced in every string (keys too)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in dict.items(value)}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value
