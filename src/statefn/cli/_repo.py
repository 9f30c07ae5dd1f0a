"""``statefn repo``: install, list and remove adaptors in the adaptor repo.

The repo is ``--repo-dir``, else ``$STATEFN_REPO_DIR``, else ``~/.statefn/repo``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._exits import ExitCode
from ._logs import CliLogs

__all__ = ["repo_command", "repo_dir"]


def repo_dir(option: str | None) -> Path:
    """The adaptor repo folder for ``--repo-dir option``."""
    if option:
        return Path(option).expanduser()
    from statefn._repo import default_repo_dir

    return default_repo_dir()


def engine_repo_dir(option: str | None) -> Path | None:
    """The repo folder an engine links from, for ``--repo-dir option``: ``None`` when the
    folder does not exist (nothing installed yet: only packaged adaptors link)."""
    folder = repo_dir(option)
    return folder if folder.is_dir() else None


def repo_command(args: argparse.Namespace, logs: CliLogs) -> ExitCode:
    """Run ``statefn repo install|list|clean|dir``; results go to stdout, one a line."""
    from statefn import StatefnError
    from statefn._repo import clean, install, list_installed

    root = repo_dir(args.repo_dir)
    if args.repo_action == "dir":
        print(root)
        return ExitCode.OK
    if args.repo_action == "list":
        entries = list_installed(root)
        for entry in entries:
            print(f"{entry.spec}\t{entry.path}")
        if not entries:
            logs.cli.info(f"No adaptors installed in {root}")
        return ExitCode.OK
    if args.repo_action == "clean":
        removed = clean(root, args.spec)
        for entry in removed:
            print(f"removed {entry.spec}")
        if not removed:
            logs.cli.info(f"Nothing to remove in {root}")
        return ExitCode.OK
    failed = False
    for spec in args.specs:
        logs.cli.info(f"Installing {spec} into {root}")
        try:
            entry = install(spec, root)
        except StatefnError as error:
            failed = True
            logs.cli.error(f"{error.message}" + (f"\n  fix: {error.fix}" if error.fix else ""))
            continue
        state = "already installed" if entry.already_installed else "installed"
        print(f"{state} {entry.spec}\t{entry.path}")
    return ExitCode.INVALID_INPUT if failed else ExitCode.OK
