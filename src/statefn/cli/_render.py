"""How problems in job code are shown: like a compiler's diagnostics.

    examples/quickstart/clean.py:12:5: RuntimeError in step clean: KeyError: 'name'
        email = row["name"]
                ^
      fix: ...

The first line is ``PATH:LINE:COLUMN: message`` (columns count from 1), so editors and
terminals can jump to it; then the source line and a caret under the column.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["problems_not_listed", "render_diagnostic", "render_error_record"]

_DETAILS_LIMIT = 300
# A source line longer than this is shown as this much of it around the column.
_LINE_WINDOW = 120


def render_diagnostic(
    label: str, line: int, column: int, message: str, source: str | None, src: str | None = None
) -> str:
    """One diagnostic: ``label:line:column: message``, the source line and a caret.

    ``source`` is the job's whole text; ``src`` a fallback (the position's own text) used
    when the line cannot be taken from ``source``.
    """
    head = f"{label}:{line}:{column}: {message}"
    text = _line_of(source, line)
    if text is None and src:
        text = src.splitlines()[0] if src.splitlines() else None
    if text is None:
        return head
    before = max(column - 1, 0)
    if len(text) > _LINE_WINDOW:
        start = max(0, min(before - _LINE_WINDOW // 2, len(text) - _LINE_WINDOW))
        shown = text[start : start + _LINE_WINDOW]
        lead = "…" if start else ""
        text = lead + shown + ("…" if start + _LINE_WINDOW < len(text) else "")
        before = before - start + len(lead)
    # Keep tabs under tabs so the caret lines up whatever the terminal's tab width.
    pad = "".join(char if char == "\t" else " " for char in text[:before])
    return f"{head}\n    {text}\n    {pad}^"


def problems_not_listed(details: Any) -> str | None:
    """The line that says how many problems a ``CompileError`` did not list, if any."""
    count = details.get("problems_not_listed") if isinstance(details, Mapping) else None
    return f"... and {count} more problems" if isinstance(count, int) else None


def render_error_record(
    record: Mapping[str, Any], step_id: str | None, label: str, source: str | None
) -> str:
    """An error record (``error.to_dict()``) as a diagnostic naming its step and fix."""
    name = record.get("name", "Error")
    where = f" in step {step_id}" if step_id else ""
    details = record.get("details")
    problems = details.get("problems") if isinstance(details, Mapping) else None
    if name == "CompileError" and isinstance(problems, list) and problems:
        text = "\n".join(
            _render_position(problem, f"{name}{where}: {problem.get('message', '')}", label, source)
            for problem in problems
            if isinstance(problem, Mapping)
        )
        more = problems_not_listed(details)
        if more:
            text += f"\n{more}"
    else:
        text = _render_position(
            record.get("pos"), f"{name}{where}: {record.get('message', '')}", label, source
        )
    if details and name == "AdaptorError":
        excerpt = orjson.dumps(details, option=orjson.OPT_NON_STR_KEYS).decode()
        if len(excerpt) > _DETAILS_LIMIT:
            excerpt = excerpt[:_DETAILS_LIMIT] + "…"
        text += f"\n  details: {excerpt}"
    if record.get("fix"):
        text += f"\n  fix: {record['fix']}"
    return text


def _render_position(pos: Any, message: str, label: str, source: str | None) -> str:
    """``message`` at ``pos`` (a ``{line, column, src}`` mapping) if it has a line."""
    if not isinstance(pos, Mapping) or not isinstance(pos.get("line"), int):
        return message
    column = pos.get("column")
    src = pos.get("src")
    return render_diagnostic(
        label,
        pos["line"],
        column if isinstance(column, int) else 1,
        message,
        source,
        src if isinstance(src, str) else None,
    )


def _line_of(source: str | None, line: int) -> str | None:
    if source is None or line < 1:
        return None
    lines = source.splitlines()
    return lines[line - 1] if line <= len(lines) else None
