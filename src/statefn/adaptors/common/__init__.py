"""The ``common`` adaptor: operations and helpers every job can use without importing.

Modelled on OpenFn's ``language-common``, in snake_case. Names that would clash with a
Python keyword or built-in carry a trailing underscore: ``as_``, ``assert_``, ``map_``.

- Flow: ``fn``, ``fn_if``, ``combine``, ``each``, ``map_``, ``as_``
- Reading state (JSONPath, RFC 9535): ``source``, ``source_value``, ``data_path``,
  ``data_value``, ``last_reference_value``, ``merge``, ``join``
- Building values: ``field``, ``fields``, ``chunk``, ``to_array``, ``split_keys``,
  ``array_to_string``, ``human_proper``, ``scrub_emojis``, ``group``
- Data in and out: ``parse_csv``, ``cursor``, ``compose_next_state``
- Checks and logs: ``assert_``, ``validate``, ``log``, ``debug``
"""

from __future__ import annotations

from statefn.adaptor import compose_next_state

from ._checks import assert_, validate
from ._csv import parse_csv
from ._cursor import cursor
from ._flow import as_, combine, each, fn, fn_if, map_
from ._log import debug, log
from ._paths import (
    data_path,
    data_value,
    join,
    last_reference_value,
    merge,
    source,
    source_value,
)
from ._values import (
    array_to_string,
    chunk,
    field,
    fields,
    group,
    human_proper,
    scrub_emojis,
    split_keys,
    to_array,
)

__all__ = [
    "array_to_string",
    "as_",
    "assert_",
    "chunk",
    "combine",
    "compose_next_state",
    "cursor",
    "data_path",
    "data_value",
    "debug",
    "each",
    "field",
    "fields",
    "fn",
    "fn_if",
    "group",
    "human_proper",
    "join",
    "last_reference_value",
    "log",
    "map_",
    "merge",
    "parse_csv",
    "scrub_emojis",
    "source",
    "source_value",
    "split_keys",
    "to_array",
    "validate",
]
