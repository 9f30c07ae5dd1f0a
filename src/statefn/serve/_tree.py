"""A state shown to people: as a collapsible tree, and as the changes a step made to it.

The tree is HTML built from ``<details>`` elements, so it folds and unfolds with no script.
States can be megabytes, so both views are bounded: the tree draws at most ``budget`` values
and says how many it left out, and the diff stops after ``limit`` changes. Every key and
value passes through ``markupsafe.escape``: a state is data, never markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from markupsafe import Markup, escape

__all__ = ["Change", "Diff", "diff", "path_text", "short_json", "tree"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_STRING_CHARS = 2000
_SHORT_CHARS = 200

PathPart = str | int


def path_text(path: tuple[PathPart, ...]) -> str:
    """``("data", "rows", 3, "a b")`` as ``data.rows[3]["a b"]`` (``$`` for the root)."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{orjson.dumps(part).decode()}]"
    return text or "$"


def short_json(value: Any, limit: int = _SHORT_CHARS) -> str:
    """``value`` as compact JSON, cut to ``limit`` characters with an ellipsis."""
    text = orjson.dumps(value).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        shown = value if len(value) <= _STRING_CHARS else value[:_STRING_CHARS]
        more = len(value) - len(shown)
        tail = f'<span class="more"> … {more} more characters</span>' if more else ""
        return f'<span class="v-str">{escape(orjson.dumps(shown).decode())}</span>{tail}'
    kind = "v-null" if value is None else "v-bool" if isinstance(value, bool) else "v-num"
    return f'<span class="{kind}">{escape(orjson.dumps(value).decode())}</span>'


class _TreeWriter:
    def __init__(self, name: str, open_depth: int, budget: int) -> None:
        self.name = name
        self.open_depth = open_depth
        self.budget = budget
        self.out: list[str] = []

    def node(self, path: tuple[PathPart, ...], value: Any) -> None:
        self.budget -= 1
        label = f'<span class="k">{escape(path[-1])}</span> ' if path else ""
        if not isinstance(value, dict | list):
            self.out.append(f"<li>{label}{_scalar(value)}</li>")
            return
        if not value:
            empty = "{}" if isinstance(value, dict) else "[]"
            self.out.append(f'<li>{label}<span class="v-empty">{empty}</span></li>')
            return
        items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        count = f"{len(items)} {'key' if isinstance(value, dict) else 'item'}"
        count += "" if len(items) == 1 else "s"
        opened = " open" if len(path) < self.open_depth else ""
        ident = escape(f"{self.name}:{path_text(path)}")
        self.out.append(
            f'<li><details data-id="{ident}"{opened}><summary>{label}'
            f'<span class="count">{count}</span></summary><ul>'
        )
        for shown, (child_key, child) in enumerate(items):
            if self.budget <= 0:
                left = len(items) - shown
                self.out.append(f'<li class="more">… {left} more not shown</li>')
                break
            self.node((*path, child_key), child)
        self.out.append("</ul></details></li>")


def tree(value: Any, name: str = "state", *, open_depth: int = 2, budget: int = 2000) -> Markup:
    """``value`` (decoded JSON) as nested lists; the first ``open_depth`` levels unfolded.

    Each fold carries ``data-id`` = ``name:path``, so a page that redraws the tree can
    keep open what the reader opened.
    """
    writer = _TreeWriter(name, open_depth, budget)
    writer.node((), value)
    return Markup(f'<ul class="tree">{"".join(writer.out)}</ul>')


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: at ``path``, a value ``added``, ``removed`` or ``changed``."""

    path: str
    kind: Literal["added", "removed", "changed"]
    before: Any = None
    after: Any = None


@dataclass(frozen=True, slots=True)
class Diff:
    """The changes from one state to another, in document order; ``complete`` is false when
    the list stopped at its limit."""

    changes: list[Change]
    complete: bool


class _DiffWriter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.changes: list[Change] = []

    def add(self, change: Change) -> bool:
        """Keep ``change``; false (and not kept) when the limit is already reached."""
        if len(self.changes) >= self.limit:
            return False
        self.changes.append(change)
        return True

    def walk(self, path: tuple[PathPart, ...], before: Any, after: Any) -> bool:
        """Record the changes under ``path``; false once the limit is reached."""
        if isinstance(before, dict) and isinstance(after, dict):
            pairs: list[tuple[PathPart, Any, Any]] = [
                (key, before.get(key, _MISSING), after.get(key, _MISSING))
                for key in [*before, *(key for key in after if key not in before)]
            ]
        elif isinstance(before, list) and isinstance(after, list):
            pairs = [
                (
                    index,
                    before[index] if index < len(before) else _MISSING,
                    after[index] if index < len(after) else _MISSING,
                )
                for index in range(max(len(before), len(after)))
            ]
        elif type(before) is type(after) and before == after:
            return True
        else:
            return self.add(Change(path_text(path), "changed", before, after))
        for key, old, new in pairs:
            where = (*path, key)
            if old is _MISSING:
                going = self.add(Change(path_text(where), "added", after=new))
            elif new is _MISSING:
                going = self.add(Change(path_text(where), "removed", before=old))
            else:
                going = self.walk(where, old, new)
            if not going:
                return False
        return True


_MISSING: Any = object()


def diff(before: Any, after: Any, *, limit: int = 500) -> Diff:
    """What changed from ``before`` to ``after`` (decoded JSON), key by key and index by
    index; a value whose type changed is one change."""
    writer = _DiffWriter(limit)
    complete = writer.walk((), before, after)
    return Diff(writer.changes, complete)
