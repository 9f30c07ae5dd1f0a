"""The linker: turn ``name`` or ``name@version`` into a loaded adaptor module.

Resolution, after the whitelist has admitted the name:

1. an explicit path in ``linker.modules[name]["path"]`` (a package directory holding
   ``__init__.py``, or a single module file);
2. the repo (``linker.repo``): ``<repo>/<name>@<version>``, or without a version the
   highest version installed;
3. installed distributions registering ``name`` in the entry point group
   ``statefn.adaptors`` (their version is the distribution's).

Path and repo adaptors, and entry-point adaptors under a ``cache_key``, are imported from
their files under a unique module name (``statefn_linked_<name>_<version>_<hash>``), so two
versions of one adaptor, or one adaptor under two cache keys, live side by side in one
process, each with its own module-level state and its own relative imports.

Linked adaptors are kept in a process cache, per cache key; ``purge`` forgets them. The
linker imports modules and reads repo manifests; it writes nothing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._errors import AdaptorImportError, InputError
from ._repo import ENTRY_POINT_GROUP, LIB_DIR, list_installed, parse_spec
from ._suggest import did_you_mean
from ._version import __version__

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "MAX_CACHE_KEYS",
    "SHIPPED_ADAPTORS",
    "LinkedAdaptor",
    "Linker",
    "is_installed_adaptor",
    "purge",
]

MAX_CACHE_KEYS = 32
"""How many cache keys keep their adaptors in the process cache; the least recently used
key beyond this many is purged."""

_SHIPPED_DIR = os.path.realpath(Path(__file__).parent / "adaptors")
SHIPPED_ADAPTORS = frozenset({"common", "http"})
"""The adaptors in ``statefn.adaptors``; their version is statefn's."""
_MODULE_PREFIX = "statefn_linked_"


@dataclass(frozen=True)
class LinkedAdaptor:
    """An adaptor the linker loaded.

    ``exports`` maps each name of the module's ``__all__`` to its value; ``root`` is the
    package directory or module file; ``source`` is ``"path"``, ``"repo"`` or
    ``"entry point"``; ``version`` is None when a path adaptor declares none.
    """

    name: str
    version: str | None
    module: ModuleType
    exports: dict[str, Any]
    root: Path
    source: str
    module_name: str = field(repr=False)
    owns_module: bool = field(default=True, repr=False)


@dataclass(frozen=True)
class _Found:
    """Where an adaptor was found, before it is imported."""

    name: str
    version: str | None
    root: Path
    source: str
    search_path: Path | None = None
    module: str | None = None
    """The importable name of an installed adaptor (found through an entry point)."""


_lock = threading.RLock()
_cache: OrderedDict[str | None, dict[tuple[str, str], LinkedAdaptor]] = OrderedDict()
_entry_points: dict[str, list[EntryPoint]] = {}
_entry_points_scanned = False


def is_installed_adaptor(name: str) -> bool:
    """Whether ``name`` is an adaptor shipped with statefn or installed as an entry point."""
    return name in SHIPPED_ADAPTORS or name in _adaptor_entry_points()


def _adaptor_entry_points() -> dict[str, list[EntryPoint]]:
    """Installed adaptors by name. Scanning every distribution takes a millisecond or
    more, and runs load adaptors per step, so the scan is kept until ``purge()``.
    """
    global _entry_points_scanned
    with _lock:
        if not _entry_points_scanned:
            # Imported here: importlib.metadata costs ~20 ms at start-up, and only runs that
            # link an installed adaptor need it.
            from importlib.metadata import entry_points

            for entry_point in entry_points(group=ENTRY_POINT_GROUP):
                _entry_points.setdefault(entry_point.name, []).append(entry_point)
            _entry_points_scanned = True
        return _entry_points


def purge(cache_key: str | None = None) -> int:
    """Forget linked adaptors: those of ``cache_key``, or with None every one (all keys and
    the keyless process cache, and the list of installed adaptors, which is read again).
    Their modules leave ``sys.modules`` and are freed once no run holds them. Returns how
    many adaptors were forgotten.
    """
    global _entry_points_scanned
    with _lock:
        if cache_key is None:
            _entry_points.clear()  # and distributions installed since are seen
            _entry_points_scanned = False
        keys = [cache_key] if cache_key is not None else list(_cache)
        forgotten = 0
        for key in keys:
            for adaptor in _cache.pop(key, {}).values():
                _drop_modules(adaptor)
                forgotten += 1
        return forgotten


class Linker:
    """Resolves and loads adaptors for a run (see the module docstring for the order).

    ``modules`` maps adaptor names to ``{"path": ..., "version": ...}``; ``repo`` is the repo
    folder (no repo is searched without it); ``whitelist`` is a list of regular expressions
    of which one must match an adaptor's whole name (None admits every name);
    ``cache_key`` gives adaptors module-level state of their own, shared only by linkers
    with the same key. Bad options raise ``InputError`` naming the field.
    """

    def __init__(
        self,
        modules: Mapping[str, Mapping[str, Any]] | None = None,
        repo: str | os.PathLike[str] | None = None,
        whitelist: Sequence[str | re.Pattern[str]] | None = None,
        cache_key: str | None = None,
    ) -> None:
        self.modules = _check_modules(modules, "linker.modules")
        if repo is not None and not isinstance(repo, str | os.PathLike):
            raise InputError("linker.repo must be a path", details={"field": "linker.repo"})
        self.repo = Path(repo) if repo is not None else None
        self.whitelist = _check_whitelist(whitelist)
        if cache_key is not None and not isinstance(cache_key, str):
            raise InputError(
                "linker.cache_key must be a string", details={"field": "linker.cache_key"}
            )
        self.cache_key = cache_key
        self._roots: set[str] = set()
        self._linked: dict[str, LinkedAdaptor] = {}

    @classmethod
    def from_option(cls, option: Mapping[str, Any] | None) -> Linker:
        """A linker from the ``linker`` run option:
        ``{"modules": ..., "repo": ..., "whitelist": [...], "cache_key": ...}``.
        """
        if option is None:
            return cls()
        if not isinstance(option, Mapping):
            raise InputError("linker must be an object", details={"field": "linker"})
        unknown = sorted(set(option) - {"modules", "repo", "whitelist", "cache_key"})
        if unknown:
            raise InputError(
                f"linker.{unknown[0]} is not a linker option "
                "(expected modules, repo, whitelist, cache_key)",
                details={"field": f"linker.{unknown[0]}"},
            )
        return cls(
            option.get("modules"),
            option.get("repo"),
            option.get("whitelist"),
            option.get("cache_key"),
        )

    def with_overrides(
        self, modules: Mapping[str, Mapping[str, Any]] | None, *, field: str = "linker"
    ) -> Linker:
        """This linker with a step's ``linker`` merged over ``modules``, name by name: an
        adaptor named in ``modules`` takes that entry whole. ``field`` names the option in
        errors (e.g. ``workflow.steps[2].linker``).
        """
        overrides = _check_modules(modules, field)
        if not overrides:
            return self
        child = Linker(None, self.repo, None, self.cache_key)
        child.modules = {**self.modules, **overrides}
        child.whitelist = self.whitelist
        child._roots = self._roots  # frames of any step's adaptor are adaptor frames
        return child

    def load(self, spec: str) -> LinkedAdaptor:
        """Resolve and import ``spec`` (``name`` or ``name@version``).

        Raises ``AdaptorImportError`` when the name is not on the whitelist, cannot be found
        in the wanted version, fails to import, or has no ``__all__``.
        """
        linked = self._linked.get(spec)
        if linked is not None:
            return linked
        name, version = parse_spec(spec)
        self._check_whitelist(name)
        version = self._wanted_version(name, version)
        found = self._find(name, version)
        with _lock:
            keyed = _cache.setdefault(self.cache_key, {})
            if self.cache_key is not None:
                _cache.move_to_end(self.cache_key)
                while len(_cache) - (None in _cache) > MAX_CACHE_KEYS:
                    oldest = next(key for key in _cache if key is not None)
                    purge(oldest)
            cache_id = (found.source, str(found.root))
            linked = keyed.get(cache_id)
            if linked is None:
                linked = _import(found, self.cache_key)
                keyed[cache_id] = linked
        if version is not None and linked.version is not None and linked.version != version:
            raise AdaptorImportError(
                f'Adaptor "{name}" at {found.root} is version {linked.version}, not {version}',
                fix=f"Set linker.modules.{name}.version to {linked.version}, or use {name}@{linked.version}",
            )
        self._roots.add(os.path.realpath(linked.root))
        self._linked[spec] = linked
        return linked

    def is_adaptor_file(self, filename: str) -> bool:
        """Whether ``filename`` (of a traceback frame) belongs to an adaptor this linker
        loaded or to an adaptor shipped with statefn.
        """
        path = _realpath(filename)
        return any(
            path == root or path.startswith(root + os.sep) for root in (_SHIPPED_DIR, *self._roots)
        )

    def _check_whitelist(self, name: str) -> None:
        if self.whitelist is None or any(entry.admits(name) for entry in self.whitelist):
            return
        raise AdaptorImportError(
            f'Adaptor "{name}" is not on the whitelist',
            fix=f'Add a pattern matching "{name}" to linker.whitelist',
            details={"adaptor": name, "whitelist": [e.pattern.pattern for e in self.whitelist]},
        )

    def _wanted_version(self, name: str, version: str | None) -> str | None:
        configured = self.modules.get(name, {}).get("version")
        if version is not None and configured is not None and configured != version:
            raise AdaptorImportError(
                f'Adaptor "{name}@{version}" conflicts with linker.modules.{name}.version '
                f"{configured}",
                fix=f"Ask for one version of {name}",
            )
        return version or configured

    def _find(self, name: str, version: str | None) -> _Found:
        configured = self.modules.get(name, {})
        if "path" in configured:
            return _found_at_path(name, configured.get("version"), Path(configured["path"]))
        seen: list[str] = []
        if self.repo is not None:
            entries = list_installed(self.repo, name=name)
            seen += [f"{entry.version} (repo)" for entry in entries]
            matching = [e for e in entries if version is None or e.version == version]
            if matching:
                entry = matching[-1]  # list_installed sorts by version: the highest is last
                lib = entry.path / LIB_DIR
                return _Found(
                    name, entry.version, entry.package, "repo", lib if lib.is_dir() else None
                )
        if name in SHIPPED_ADAPTORS and version in (None, __version__):
            # Shipped with statefn (and registered as its entry points): found without
            # scanning installed distributions, which costs ~10 ms a process.
            return _Found(
                name,
                __version__,
                Path(_SHIPPED_DIR) / name,
                "entry point",
                None,
                f"statefn.adaptors.{name}",
            )
        for entry_point in _adaptor_entry_points().get(name, ()):
            dist_version = entry_point.dist.version if entry_point.dist else None
            if version is None or dist_version == version:
                root = _entry_point_root(entry_point)
                return _Found(name, dist_version, root, "entry point", None, entry_point.module)
            seen.append(f"{dist_version} (installed package)")
        wanted = f"{name}@{version}" if version else name
        found = f": found {name} " + ", ".join(seen) if seen else ""
        where = f"the repo {self.repo} or " if self.repo is not None else ""
        if not seen:
            known = {*SHIPPED_ADAPTORS, *_adaptor_entry_points()}
            if self.repo is not None:
                known.update(entry.name for entry in list_installed(self.repo))
            found = did_you_mean(name, known)
        raise AdaptorImportError(
            f'Adaptor "{wanted}" was not found in {where}the installed packages{found}',
            fix=f"Run: statefn repo install {wanted}, or give its folder (linker.modules."
            f"{name}.path; on the command line, -a {name}=PATH)",
            details={"adaptor": name, "version": version},
        )


def _found_at_path(name: str, version: str | None, path: Path) -> _Found:
    root = path.expanduser().resolve()
    if root.is_dir() and (root / "__init__.py").is_file():
        return _Found(name, version, root, "path")
    if root.is_file() and root.suffix == ".py":
        return _Found(name, version, root, "path")
    problem = "does not exist" if not root.exists() else "is not a package or a .py file"
    raise AdaptorImportError(
        f'Adaptor "{name}": linker.modules.{name}.path {path} {problem}',
        fix="Give the adaptor's package directory (holding __init__.py) or its module file",
        details={"adaptor": name, "path": str(path)},
    )


def _entry_point_root(entry_point: EntryPoint) -> Path:
    """The package directory or module file of an entry point, found without importing it."""
    try:
        spec = importlib.util.find_spec(entry_point.module)
    except (ImportError, ValueError) as error:
        spec = None
        reason = f"{type(error).__name__}: {error}"
    else:
        reason = "module not found"
    if spec is None or spec.origin is None or entry_point.attr:
        raise AdaptorImportError(
            f'Adaptor "{entry_point.name}": cannot load {entry_point.value} ({reason})',
            fix="Reinstall the package that provides it; its entry point must name a module",
            details={"adaptor": entry_point.name, "entry_point": entry_point.value},
        )
    if spec.submodule_search_locations is not None:
        return Path(spec.origin).parent
    return Path(spec.origin)


def _import(found: _Found, cache_key: str | None) -> LinkedAdaptor:
    """Import ``found``: entry points without a cache key by their own name, the rest
    from their files under a unique name.
    """
    if found.module is not None and cache_key is None:
        module_name = found.module
        owns = False
        module = _run_import(found, module_name, owns, lambda: importlib.import_module(module_name))
    else:
        module_name = _unique_name(found, cache_key)
        owns = True
        if found.search_path is not None and str(found.search_path) not in sys.path:
            # The entry's lib folder holds the adaptor's dependencies. Appended, so packages
            # of the host (statefn itself included) win over copies installed beside them.
            sys.path.append(str(found.search_path))
        module = _run_import(
            found, module_name, owns, lambda: _exec_from_file(module_name, found.root)
        )
    exports = _exports(found, module)
    return LinkedAdaptor(
        found.name,
        found.version or _declared_version(module),
        module,
        exports,
        found.root,
        found.source,
        module_name,
        owns,
    )


def _unique_name(found: _Found, cache_key: str | None) -> str:
    import hashlib  # here: only adaptors from files come this way, and it costs ~3 ms to import

    digest = hashlib.sha256(f"{found.root}\0{cache_key}".encode()).hexdigest()[:10]
    if found.module is not None and "." in found.module:
        # A sibling of the original, so relative imports reaching above the package
        # (``from ...adaptor import operation``) still resolve.
        return f"{found.module}__{_MODULE_PREFIX}{digest}"
    label = re.sub(r"\W", "_", f"{found.name}_{found.version or 'local'}")
    return f"{_MODULE_PREFIX}{label}_{digest}"


def _exec_from_file(module_name: str, root: Path) -> ModuleType:
    if root.is_dir():
        spec = importlib.util.spec_from_file_location(
            module_name, root / "__init__.py", submodule_search_locations=[str(root)]
        )
    else:
        spec = importlib.util.spec_from_file_location(module_name, root)
    if spec is None or spec.loader is None:
        raise ImportError(f"no loader for {root}")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: its relative imports look their package up here.
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _run_import(
    found: _Found, module_name: str, owns: bool, do_import: Callable[[], ModuleType]
) -> ModuleType:
    try:
        return do_import()
    except (Exception, SystemExit) as error:
        if owns:
            _forget_modules([module_name])
        label = f"{found.name}@{found.version}" if found.version else found.name
        raise AdaptorImportError(
            f'Could not import adaptor "{label}" from {found.root}: '
            f"{type(error).__name__}: {error}",
            fix=f"Fix the error in the adaptor, or use another version of {found.name}",
            details={"adaptor": found.name, "version": found.version, "path": str(found.root)},
        ) from error


def _exports(found: _Found, module: ModuleType) -> dict[str, Any]:
    names = getattr(module, "__all__", None)
    if names is None:
        raise AdaptorImportError(
            f'Adaptor "{found.name}" ({found.root}) has no __all__',
            fix="List the adaptor's public operations in __all__ in its module",
            details={"adaptor": found.name, "path": str(found.root)},
        )
    missing = [name for name in names if not hasattr(module, name)]
    if missing:
        raise AdaptorImportError(
            f'Adaptor "{found.name}" lists names in __all__ that it does not define: '
            + ", ".join(missing),
            fix="Define those names in the adaptor or remove them from __all__",
            details={"adaptor": found.name, "missing": missing},
        )
    return {name: getattr(module, name) for name in names}


def _declared_version(module: ModuleType) -> str | None:
    version = getattr(module, "__version__", None)
    return version if isinstance(version, str) else None


def _drop_modules(adaptor: LinkedAdaptor) -> None:
    if adaptor.owns_module:
        _forget_modules([adaptor.module_name])


def _forget_modules(prefixes: Sequence[str]) -> None:
    for name in list(sys.modules):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            del sys.modules[name]


@lru_cache(maxsize=4096)
def _realpath(filename: str) -> str:
    return os.path.realpath(filename)


def _check_modules(modules: Any, field: str) -> dict[str, dict[str, str]]:
    if modules is None:
        return {}
    if not isinstance(modules, Mapping):
        raise InputError(f"{field} must be an object", details={"field": field})
    checked: dict[str, dict[str, str]] = {}
    for name, entry in modules.items():
        where = f"{field}.{name}"
        if not isinstance(name, str) or not isinstance(entry, Mapping):
            raise InputError(f"{where} must be an object", details={"field": where})
        for key, value in entry.items():
            if key not in ("path", "version"):
                raise InputError(
                    f"{where}.{key} is not a module option (expected path, version)",
                    details={"field": f"{where}.{key}"},
                )
            if not isinstance(value, str | os.PathLike):
                raise InputError(
                    f"{where}.{key} must be a string", details={"field": f"{where}.{key}"}
                )
        checked[name] = {key: os.fspath(value) for key, value in entry.items()}
    return checked


@dataclass(frozen=True, slots=True)
class _Allowed:
    """A whitelist entry. A plain string must match the whole name; a compiled pattern or
    a ``/pattern/flags`` string (OpenFn's form) is searched for, as JavaScript's
    ``RegExp.test`` does, so its own anchors decide."""

    pattern: re.Pattern[str]
    whole: bool

    def admits(self, name: str) -> bool:
        found = self.pattern.fullmatch(name) if self.whole else self.pattern.search(name)
        return found is not None


# OpenFn's regular expression literals: /pattern/flags (flag g means nothing here).
_LITERAL = r"/(?P<pattern>.*)/(?P<flags>[gimsuy]*)"  # compiled on first use
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


def _allowed(entry: str | re.Pattern[str]) -> _Allowed:
    if isinstance(entry, re.Pattern):
        return _Allowed(entry, whole=False)
    literal = re.fullmatch(_LITERAL, entry, re.DOTALL)
    if literal is None:
        return _Allowed(re.compile(entry), whole=True)
    flags = 0
    for flag in literal["flags"]:
        flags |= _FLAGS.get(flag, 0)
    return _Allowed(re.compile(literal["pattern"], flags), whole=False)


def _check_whitelist(whitelist: Any) -> list[_Allowed] | None:
    if whitelist is None:
        return None
    if isinstance(whitelist, str) or not isinstance(whitelist, Sequence):
        raise InputError(
            "linker.whitelist must be a list of regular expressions",
            details={"field": "linker.whitelist"},
        )
    patterns = []
    for index, pattern in enumerate(whitelist):
        where = f"linker.whitelist[{index}]"
        if not isinstance(pattern, str | re.Pattern):
            raise InputError(
                f"{where} must be a string or a compiled pattern", details={"field": where}
            )
        try:
            patterns.append(_allowed(pattern))
        except re.error as error:
            raise InputError(
                f"{where} is not a valid regular expression: {error}", details={"field": where}
            ) from error
    return patterns
