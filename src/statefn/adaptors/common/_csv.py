"""``parse_csv``: CSV text or a file-like into rows of ``data``, whole or in chunks."""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from statefn.adaptor import Operation, State, adaptor_error, compose_next_state, operation, resolve

from ._flow import thread

__all__ = ["parse_csv"]

Row = dict[str, str] | list[str]


@operation
def parse_csv(
    text_or_file: Any,
    *,
    delimiter: str = ",",
    quote: str = '"',
    escape: str | None = None,
    columns: bool | list[str] = True,
    trim: bool = True,
    skip_empty_lines: bool = True,
    chunk_size: int | None = None,
    callback: Callable[[State, list[Row]], Any] | None = None,
) -> Operation:
    """Parse CSV into rows: ``data`` = a list of dicts, one per row, keyed by the header row.

    ``text_or_file``: a string, bytes, a file-like object or an iterable of lines (text or
    UTF-8 bytes), or a function of state giving one; a leading byte order mark is dropped.
    Options: ``delimiter``; ``quote`` (a doubled quote inside quotes is a literal one);
    ``escape`` (a character escaping the next, off by default); ``columns`` (True: the
    first row names the keys; False: rows are lists; a list: these keys, every row is
    data); ``trim`` (strip spaces around values); ``skip_empty_lines``. A row whose length
    differs from the header's is an error naming its line.

    Rows are read lazily. Without ``chunk_size``, all rows go at once; with it, rows go in
    lists of at most that many. Each list goes to ``callback(state, rows)`` (sync or
    async; it returns the next state) or, without one, into ``data`` through
    ``compose_next_state`` (the previous ``data`` moves to ``references``).

    Example: ``parse_csv(S.data.body, chunk_size=100, callback=lambda state, rows: ...)``
    """
    if chunk_size is not None and chunk_size < 1:
        raise adaptor_error(
            f"chunk_size must be at least 1, got {chunk_size}", chunk_size=chunk_size
        )
    dialect = {"delimiter": delimiter, "quotechar": quote, "escapechar": escape}

    def run(state: State) -> Any:
        # skipinitialspace lets a quoted value follow the spaces that trimming ignores.
        options = {**resolve(dialect, state), "skipinitialspace": trim}
        rows = _rows(_lines(resolve(text_or_file, state)), options, columns, trim, skip_empty_lines)
        batches: Iterable[list[Row]]
        if chunk_size is None:
            batches = [list(rows)]
        else:
            batches = iter(lambda: list(itertools.islice(rows, chunk_size)), [])
        steps = (_deliver_step(batch, callback) for batch in batches)
        return thread(state, steps)

    return run


def _deliver_step(
    batch: list[Row], callback: Callable[[State, list[Row]], Any] | None
) -> Callable[[State], Any]:
    if callback is None:
        return lambda state: compose_next_state(state, batch)
    return lambda state: callback(state, batch)


def _lines(source: Any) -> Iterator[str]:
    if isinstance(source, str):
        lines: Iterable[Any] = io.StringIO(source)
    elif isinstance(source, bytes | bytearray):
        lines = io.StringIO(bytes(source).decode("utf-8", errors="replace"))
    elif isinstance(source, Iterable) and not isinstance(source, Mapping):
        lines = source  # open files, io.StringIO, httpx's iter_lines(), lists of lines
    else:
        raise adaptor_error(
            f"parse_csv: expected CSV text or a file-like object, got {type(source).__name__}",
            fix="Pass the CSV as a string, e.g. parse_csv(S.data) when data holds the text",
        )
    first = True
    for line in lines:
        text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
        if first:
            text = text.removeprefix("\ufeff")
            first = False
        yield text


def _rows(
    lines: Iterator[str],
    options: dict[str, Any],
    columns: bool | list[str],
    trim: bool,
    skip_empty_lines: bool,
) -> Iterator[Row]:
    import csv  # here, not when the adaptor is linked for a job that reads no CSV

    reader = csv.reader(lines, **options)
    header: list[str] | None = list(columns) if isinstance(columns, list) else None
    try:
        for record in reader:
            if skip_empty_lines and not record:
                continue
            values = [value.strip() for value in record] if trim else record
            if columns is True and header is None:
                header = values
                continue
            if header is None:
                yield values
                continue
            if len(values) != len(header):
                raise adaptor_error(
                    f"Invalid record length: expected {len(header)} columns, "
                    f"got {len(values)} on line {reader.line_num}",
                    line=reader.line_num,
                    expected=len(header),
                    got=len(values),
                )
            yield dict(zip(header, values, strict=True))
    except csv.Error as error:
        raise adaptor_error(
            f"Invalid CSV on line {reader.line_num}: {error}", line=reader.line_num
        ) from None
