"""Reading the user's files: JSON or YAML data, and text.

Every failure (missing file, broken JSON or YAML) becomes a ``CliError`` naming the file
and, where the parser knows it, the line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ._exits import CliError

__all__ = ["YAML_SUFFIXES", "read_credentials", "read_data", "read_text"]

YAML_SUFFIXES = (".yaml", ".yml")


def read_text(path: Path | str) -> str:
    """The text of ``path``; ``-`` reads standard input."""
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"File not found: {path}") from None
    except IsADirectoryError:
        raise CliError(f"Expected a file but found a directory: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"Cannot read {path}: {error}") from None


def read_data(path: Path | str) -> Any:
    """The JSON or YAML value in ``path`` (by its suffix; standard input may be either)."""
    text = read_text(path)
    is_yaml = str(path).endswith(YAML_SUFFIXES)
    if not is_yaml:
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            if str(path) != "-":
                raise CliError(
                    f"{path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}"
                ) from None
    return _parse_yaml(text, path)


def read_credentials(path: str) -> dict[str, Any]:
    """A credentials file (JSON or YAML): a map of credential id to configuration object."""
    credentials = read_data(path)
    if not isinstance(credentials, dict) or not all(isinstance(k, str) for k in credentials):
        raise CliError(f"{path}: expected a map of credential id to configuration")
    bad = [key for key, value in credentials.items() if not isinstance(value, dict)]
    if bad:
        raise CliError(f"{path}: credential {bad[0]!r} must be an object (a configuration)")
    return credentials


def _parse_yaml(text: str, path: Path | str) -> Any:
    # PyYAML costs ~40 ms to import, so only YAML input pays for it.
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        if mark is not None:
            where = f"{path}:{mark.line + 1}:{mark.column + 1}"
            raise CliError(f"{where}: invalid {_kind(path)}: {problem}") from None
        raise CliError(f"{path}: invalid {_kind(path)}: {problem}") from None


def _kind(path: Path | str) -> str:
    return "YAML" if str(path).endswith(YAML_SUFFIXES) else "JSON or YAML"
