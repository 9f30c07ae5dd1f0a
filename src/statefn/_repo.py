"""The adaptor repo: a folder of installed adaptors, each ``name@version`` side by side.

Layout::

    <repo>/
        http@1.0.0/
            statefn-adaptor.json        the manifest: name, version, package, source
            statefn_adaptor_http/       the adaptor package
            statefn_adaptor_http-1.0.0.dist-info/
            lib/                        its third-party dependencies (pip's --target)
        http@2.0.0/ ...

``install`` runs pip (a separate process) and is used by the command line only; the
runtime core reads manifests through ``list_installed`` and imports what they point to.
An install happens in a hidden temporary folder inside the repo and is renamed into place
at the end, so a failed install leaves nothing behind that looks installed.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ._errors import AdaptorImportError, InputError

if TYPE_CHECKING:
    from importlib.metadata import Distribution

__all__ = [
    "ENTRY_POINT_GROUP",
    "LIB_DIR",
    "MANIFEST_NAME",
    "InstalledAdaptor",
    "clean",
    "default_repo_dir",
    "install",
    "list_installed",
    "parse_spec",
    "version_key",
]

ENTRY_POINT_GROUP = "statefn.adaptors"
MANIFEST_NAME = "statefn-adaptor.json"
LIB_DIR = "lib"
"""The folder of an entry holding the adaptor's third-party dependencies."""
DISTRIBUTION_PREFIX = "statefn-adaptor-"
_TEMP_PREFIX = ".install-"

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]*")
_RELEASE = re.compile(r"(\d+(?:\.\d+)*)(.*)")


@dataclass(frozen=True)
class InstalledAdaptor:
    """One ``name@version`` entry of the repo.

    ``path`` is the entry's folder; ``package`` the adaptor's package directory or module
    file inside it. ``already_installed`` is true when ``install`` found the entry in place
    and did nothing.
    """

    name: str
    version: str
    path: Path
    package: Path
    source: str
    already_installed: bool = False

    @property
    def spec(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe record of the entry (for ``statefn repo list``)."""
        return {
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "package": str(self.package),
            "source": self.source,
            "already_installed": self.already_installed,
        }


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``name`` or ``name@version`` (``@latest`` means no version).

    Raises ``AdaptorImportError`` for anything else, such as an empty name or spaces.
    """
    name, _, version = spec.partition("@")
    if not _NAME.fullmatch(name) or (version and not _VERSION.fullmatch(version)):
        raise AdaptorImportError(
            f"Invalid adaptor spec {spec!r}",
            fix="Write an adaptor as name or name@version, e.g. http or http@1.0.0",
        )
    if not version or version == "latest":
        return name, None
    return name, version


def version_key(version: str) -> tuple[Any, ...]:
    """A sort key for versions: release numbers numerically, a final release after its
    pre-releases (``1.0.0rc1 < 1.0.0 < 1.0.1 < 1.10.0``). Not the whole of PEP 440, which
    the runtime does not need: the repo only has to pick its highest version.
    """
    match = _RELEASE.fullmatch(version)
    if match is None:
        return ((), 0, version)
    release = tuple(int(part) for part in match.group(1).split("."))
    while release and release[-1] == 0:  # 1.0 and 1.0.0 are the same release
        release = release[:-1]
    suffix = match.group(2)
    return (release, 0 if suffix and suffix[0] not in ".+" else 1, suffix)


def default_repo_dir() -> Path:
    """The repo folder: ``$STATEFN_REPO_DIR``, else ``~/.statefn/repo``."""
    configured = os.environ.get("STATEFN_REPO_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".statefn" / "repo"


def list_installed(
    repo_dir: str | os.PathLike[str] | None = None, *, name: str | None = None
) -> list[InstalledAdaptor]:
    """The repo's entries (only those of adaptor ``name`` when given), by name then version.

    Folders without a readable manifest (an install in progress, stray files) are skipped.
    """
    root = Path(repo_dir) if repo_dir is not None else default_repo_dir()
    if not root.is_dir():
        return []
    pattern = f"{name}@*" if name is not None else "*@*"
    entries = [entry for folder in root.glob(pattern) if (entry := _read_manifest(folder))]
    if name is not None:
        entries = [entry for entry in entries if entry.name == name]
    return sorted(entries, key=lambda entry: (entry.name, version_key(entry.version)))


def install(spec: str, repo_dir: str | os.PathLike[str] | None = None) -> InstalledAdaptor:
    """Install an adaptor into the repo with pip and return its entry.

    ``spec`` is ``name`` or ``name@version`` (the distribution ``statefn-adaptor-<name>``
    from the package index), a local project directory, or a wheel file. The adaptor's
    dependencies are installed into its own folder. Installing an entry that is already
    there does nothing and returns it with ``already_installed=True``.
    """
    root = Path(repo_dir) if repo_dir is not None else default_repo_dir()
    target, wanted_name, wanted_version = _pip_target(spec)
    if wanted_name is not None and wanted_version is not None:
        existing = _read_manifest(root / f"{wanted_name}@{wanted_version}")
        if existing is not None:
            return _already(existing)
    # Imported here, as in clean: the linker imports this module for reading the repo, and
    # runs should not pay for what only installs use.
    import shutil
    import tempfile

    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=root))
    try:
        lib = staging / LIB_DIR
        _run_pip(target, lib)
        provided = _find_adaptor(lib, wanted_name, source=target)
        final = root / f"{provided.name}@{provided.version}"
        existing = _read_manifest(final)
        if existing is not None:
            return _already(existing)
        entry = InstalledAdaptor(
            provided.name, provided.version, final, final / _move_out(provided, lib), target
        )
        _write_manifest(staging, entry)
        try:
            os.rename(staging, final)  # atomic: the entry appears complete or not at all
        except OSError:
            existing = _read_manifest(final)  # a concurrent install of it finished first
            if existing is None:
                raise
            return _already(existing)
    except OSError as error:
        raise AdaptorImportError(
            f"Could not install {spec}: {error}", fix=f"Check that {root} is writable"
        ) from error
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return entry


def clean(
    repo_dir: str | os.PathLike[str] | None = None, spec: str | None = None
) -> list[InstalledAdaptor]:
    """Remove every entry of the repo, or those matching ``spec`` (``name`` removes every
    version of it, ``name@version`` one). Returns what was removed.
    """
    import shutil

    root = Path(repo_dir) if repo_dir is not None else default_repo_dir()
    if spec is None:
        removed = list_installed(root)
        for leftover in root.glob(f"{_TEMP_PREFIX}*") if root.is_dir() else ():
            shutil.rmtree(leftover, ignore_errors=True)
    else:
        name, version = parse_spec(spec)
        removed = [
            entry
            for entry in list_installed(root, name=name)
            if version is None or entry.version == version
        ]
    for entry in removed:
        # The manifest goes first: a folder half-removed is no longer an entry.
        (entry.path / MANIFEST_NAME).unlink(missing_ok=True)
        shutil.rmtree(entry.path, ignore_errors=True)
    return removed


def _already(entry: InstalledAdaptor) -> InstalledAdaptor:
    return InstalledAdaptor(
        entry.name, entry.version, entry.path, entry.package, entry.source, already_installed=True
    )


def _pip_target(spec: str) -> tuple[str, str | None, str | None]:
    """What to hand pip for ``spec``, with the adaptor name and version when known."""
    as_path = Path(spec).expanduser()
    looks_like_path = os.sep in spec or spec.startswith(".") or spec.endswith(".whl")
    if as_path.is_file() and spec.endswith(".whl"):
        return str(as_path.resolve()), None, None
    if as_path.is_dir() and (looks_like_path or _is_project(as_path)):
        if not _is_project(as_path):
            raise InputError(
                f"{spec} is not a Python project: it has no pyproject.toml or setup.py",
                fix="Give the folder of the adaptor's project, a wheel file, or name@version",
            )
        return str(as_path.resolve()), None, None
    if looks_like_path:
        raise InputError(
            f"Cannot install {spec}: no such project directory or wheel file",
            fix="Give the folder of the adaptor's project, a wheel file, or name@version",
        )
    name, version = parse_spec(spec)
    requirement = DISTRIBUTION_PREFIX + name + (f"=={version}" if version else "")
    return requirement, name, version


def _is_project(folder: Path) -> bool:
    return (folder / "pyproject.toml").is_file() or (folder / "setup.py").is_file()


def _run_pip(target: str, staging: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--target",
        str(staging),
        "--no-input",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--quiet",
        target,
    ]
    import subprocess  # only installing needs it: a run that links an adaptor does not

    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise AdaptorImportError(
            f"pip could not install {target}: {output[-2000:]}",
            fix="Check the adaptor's name and version, or the project or wheel given",
            details={"command": command, "returncode": result.returncode},
        )


class _Provided(NamedTuple):
    """The adaptor a pip install brought: its name, module, version and metadata folder."""

    name: str
    module: str
    version: str
    info: Path


def _find_adaptor(lib: Path, wanted_name: str | None, *, source: str) -> _Provided:
    """Find the adaptor among what pip installed into ``lib``."""
    found = [
        _Provided(entry_point.name, entry_point.module, dist.version, info)
        for info, dist in _distributions(lib)
        for entry_point in dist.entry_points.select(group=ENTRY_POINT_GROUP)
    ] or _by_distribution_name(lib)
    if wanted_name is not None:
        found = [item for item in found if item.name == wanted_name] or found
    names = sorted({item.name for item in found})
    if len(names) != 1:
        problem = f"provides several adaptors ({', '.join(names)})" if names else "is no adaptor"
        raise AdaptorImportError(
            f"{source} {problem}",
            fix=f"An adaptor's project registers one entry point in group {ENTRY_POINT_GROUP}",
        )
    parse_spec(names[0])
    return found[0]


def _distributions(lib: Path) -> list[tuple[Path, Distribution]]:
    # Imported here: the linker imports this module, and runs should not pay ~20 ms for
    # what only installs need.
    from importlib.metadata import PathDistribution

    return [(info, PathDistribution(info)) for info in sorted(lib.glob("*.dist-info"))]


def _by_distribution_name(lib: Path) -> list[_Provided]:
    """Adaptors found by the ``statefn-adaptor-<name>`` distribution name instead."""
    found = []
    for info, dist in _distributions(lib):
        dist_name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        if not dist_name.startswith(DISTRIBUTION_PREFIX):
            continue
        tops = {
            file.parts[0].removesuffix(".py")
            for file in dist.files or ()
            if not file.parts[0].endswith((".dist-info", ".data")) and file.parts[0] != "bin"
        }
        if len(tops) == 1:
            name = dist_name.removeprefix(DISTRIBUTION_PREFIX)
            found.append(_Provided(name, tops.pop(), dist.version, info))
    return found


def _move_out(provided: _Provided, lib: Path) -> Path:
    """Move the adaptor's own top-level package and metadata from ``lib`` to the entry
    folder, so that putting ``lib`` on the import path exposes its dependencies only (not
    the adaptor under its plain name, where two versions would shadow each other).
    Returns the package's path relative to the entry folder.
    """
    package = _module_location(lib, provided.module)
    if package is None:
        raise AdaptorImportError(
            f"The module {provided.module} of adaptor {provided.name} was not installed",
            fix=f"Check the entry point {provided.name} = {provided.module} in its project",
        )
    top = package.relative_to(lib).parts[0]
    (lib / top).rename(lib.parent / top)  # within the staging folder: one file system
    provided.info.rename(lib.parent / provided.info.name)
    if not any(lib.iterdir()):
        lib.rmdir()
    return package.relative_to(lib)


def _module_location(folder: Path, module: str) -> Path | None:
    """The package directory or module file of dotted ``module`` under ``folder``."""
    base = folder.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base
    single = base.with_name(base.name + ".py")
    return single if single.is_file() else None


def _write_manifest(folder: Path, entry: InstalledAdaptor) -> None:
    manifest = {
        "name": entry.name,
        "version": entry.version,
        "package": entry.package.relative_to(entry.path).as_posix(),
        "source": entry.source,
    }
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _read_manifest(folder: Path) -> InstalledAdaptor | None:
    """The entry described by ``folder``'s manifest, or None when it has no valid one."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        name, version, package = manifest["name"], manifest["version"], manifest["package"]
        source = str(manifest.get("source", ""))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not all(isinstance(value, str) for value in (name, version, package)):
        return None
    if Path(package).is_absolute() or ".." in Path(package).parts:
        return None  # an entry's package lies inside its folder
    return InstalledAdaptor(name, version, folder, folder / package, source)
