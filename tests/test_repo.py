from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from statefn._errors import AdaptorImportError, InputError
from statefn._linker import Linker
from statefn._repo import (
    InstalledAdaptor,
    clean,
    default_repo_dir,
    install,
    list_installed,
    parse_spec,
    version_key,
)
from test_linker import isolated_imports  # noqa: F401  (autouse: same isolation here)

PROJECT = Path(__file__).parent / "fixtures" / "adaptors" / "greet-project"


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    """pip may only use local projects and wheels here: never the package index."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIP_NO_INDEX", "1")
        patch.delenv("PIP_FIND_LINKS", raising=False)
        yield


def make_project(
    dest: Path,
    *,
    name: str = "statefn-adaptor-greet",
    version: str = "1.0.0",
    entry_point: str | None = "greet",
    dependencies: Sequence[str] = (),
    greeting: str | None = None,
) -> Path:
    """A copy of the fixture project with its name, version, entry point or dependencies
    changed. Its package folder is named after the distribution."""
    shutil.copytree(PROJECT, dest, ignore=shutil.ignore_patterns("__pycache__"))
    package = name.replace("-", "_")
    if package != "statefn_adaptor_greet":
        (dest / "statefn_adaptor_greet").rename(dest / package)
    lines = [
        "[build-system]",
        "requires = []",
        'build-backend = "build_backend"',
        'backend-path = ["."]',
        "[project]",
        f'name = "{name}"',
        f'version = "{version}"',
        f"dependencies = {json.dumps(list(dependencies))}",
    ]
    if entry_point is not None:
        lines += ['[project.entry-points."statefn.adaptors"]', f'{entry_point} = "{package}"']
    (dest / "pyproject.toml").write_text("\n".join(lines) + "\n")
    if greeting is not None:
        (dest / package / "util.py").write_text(
            f"def greeting(name: str) -> str:\n    return f{greeting!r}\n"
        )
    return dest


def build_wheel(project: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(project)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


@dataclass
class SharedRepo:
    path: Path
    from_project: InstalledAdaptor
    from_wheel: InstalledAdaptor
    project: Path
    wheel: Path


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, offline: None) -> SharedRepo:
    """One repo for the module: greet 1.0.0 from a project folder, 2.0.0 from a wheel."""
    base = tmp_path_factory.mktemp("shared")
    project = make_project(base / "v1", greeting="hello {name} from 1")
    wheel = build_wheel(
        make_project(base / "v2", version="2.0.0", greeting="hello {name} from 2"), base / "dist"
    )
    repo = base / "repo"
    return SharedRepo(repo, install(str(project), repo), install(str(wheel), repo), project, wheel)


def copy_of(shared: SharedRepo, tmp_path: Path) -> Path:
    return Path(shutil.copytree(shared.path, tmp_path / "repo"))


# install


def test_install_from_project_folder_lays_out_the_entry(shared: SharedRepo) -> None:
    entry = shared.from_project
    assert (entry.name, entry.version, entry.already_installed) == ("greet", "1.0.0", False)
    assert entry.path == shared.path / "greet@1.0.0"
    assert entry.package == entry.path / "statefn_adaptor_greet"
    assert entry.source == str(shared.project.resolve())
    assert (entry.package / "__init__.py").is_file()
    assert (entry.path / "statefn_adaptor_greet-1.0.0.dist-info").is_dir()
    assert not (entry.path / "lib").exists()  # no dependencies
    manifest = json.loads((entry.path / "statefn-adaptor.json").read_text())
    assert manifest == {
        "name": "greet",
        "version": "1.0.0",
        "package": "statefn_adaptor_greet",
        "source": str(shared.project.resolve()),
    }


def test_install_from_wheel_file(shared: SharedRepo) -> None:
    entry = shared.from_wheel
    assert (entry.name, entry.version) == ("greet", "2.0.0")
    assert entry.path == shared.path / "greet@2.0.0"
    assert entry.source == str(shared.wheel.resolve())


def test_installing_same_spec_twice_is_a_no_op_without_pip(shared: SharedRepo) -> None:
    # The index is off for these tests: had pip run, this install would have failed.
    again = install("greet@1.0.0", shared.path)
    assert again.already_installed
    assert again.path == shared.from_project.path


def test_installing_same_project_twice_is_a_no_op(shared: SharedRepo) -> None:
    manifest = shared.from_project.path / "statefn-adaptor.json"
    written = manifest.stat().st_mtime_ns
    again = install(str(shared.project), shared.path)
    assert again.already_installed
    assert manifest.stat().st_mtime_ns == written
    assert not list(shared.path.glob(".install-*"))


def test_failed_install_leaves_nothing_behind(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with pytest.raises(AdaptorImportError) as raised:
        install("nothing@1.0.0", repo)
    assert raised.value.message.startswith("pip could not install statefn-adaptor-nothing==1.0.0: ")
    assert list(repo.iterdir()) == []


def test_project_that_is_no_adaptor_is_rejected(tmp_path: Path) -> None:
    project = make_project(tmp_path / "plain", name="plain-lib", entry_point=None)
    repo = tmp_path / "repo"
    with pytest.raises(AdaptorImportError) as raised:
        install(str(project), repo)
    assert raised.value.message == f"{project.resolve()} is no adaptor"
    assert list(repo.iterdir()) == []


def test_adaptor_name_comes_from_distribution_name_without_entry_point(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", name="statefn-adaptor-hola", entry_point=None)
    entry = install(str(project), tmp_path / "repo")
    assert (entry.name, entry.package.name) == ("hola", "statefn_adaptor_hola")


def test_dependencies_install_into_the_entry_lib_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper = make_project(tmp_path / "helper", name="greet-helper", entry_point=None)
    (helper / "greet_helper" / "__init__.py").write_text("WORD = 'helped'\n")
    monkeypatch.setenv("PIP_FIND_LINKS", str(build_wheel(helper, tmp_path / "wheels").parent))
    project = make_project(tmp_path / "p", version="3.0.0", dependencies=["greet-helper"])
    init = project / "statefn_adaptor_greet" / "__init__.py"
    init.write_text(init.read_text() + "\nfrom greet_helper import WORD\n")
    entry = install(str(project), tmp_path / "repo")
    assert (entry.path / "lib" / "greet_helper" / "__init__.py").is_file()
    assert not (entry.path / "lib" / "statefn_adaptor_greet").exists()
    adaptor = Linker(repo=tmp_path / "repo").load("greet@3.0.0")
    assert adaptor.module.WORD == "helped"
    assert str(entry.path / "lib") == sys.path[-1]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("./nowhere", "Cannot install ./nowhere: no such project directory or wheel file"),
        ("missing.whl", "Cannot install missing.whl: no such project directory or wheel file"),
    ],
)
def test_install_of_missing_path_is_input_error(
    spec: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as raised:
        install(spec, tmp_path / "repo")
    assert raised.value.message == message


def test_install_of_folder_without_project_is_input_error(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(InputError) as raised:
        install(str(folder), tmp_path / "repo")
    assert raised.value.message == (
        f"{folder} is not a Python project: it has no pyproject.toml or setup.py"
    )


# list, clean, dir


def test_list_installed_sorts_by_name_then_version(shared: SharedRepo) -> None:
    assert [entry.spec for entry in list_installed(shared.path)] == ["greet@1.0.0", "greet@2.0.0"]
    assert [entry.spec for entry in list_installed(shared.path, name="greet")] == [
        "greet@1.0.0",
        "greet@2.0.0",
    ]
    assert list_installed(shared.path, name="other") == []


def test_list_installed_of_missing_repo_is_empty(tmp_path: Path) -> None:
    assert list_installed(tmp_path / "none") == []


def test_list_installed_skips_folders_without_valid_manifest(
    tmp_path: Path, shared: SharedRepo
) -> None:
    repo = copy_of(shared, tmp_path)
    (repo / "junk@1.0.0").mkdir()
    (repo / "greet@2.0.0" / "statefn-adaptor.json").write_text("{not json")
    (repo / "evil@1.0.0").mkdir()
    outside = {"name": "evil", "version": "1.0.0", "package": "../greet@1.0.0", "source": ""}
    (repo / "evil@1.0.0" / "statefn-adaptor.json").write_text(json.dumps(outside))
    assert [entry.spec for entry in list_installed(repo)] == ["greet@1.0.0"]


def test_installed_adaptor_to_dict(shared: SharedRepo) -> None:
    record = shared.from_wheel.to_dict()
    assert record == {
        "name": "greet",
        "version": "2.0.0",
        "path": str(shared.path / "greet@2.0.0"),
        "package": str(shared.path / "greet@2.0.0" / "statefn_adaptor_greet"),
        "source": str(shared.wheel.resolve()),
        "already_installed": False,
    }
    json.dumps(record)


def test_clean_one_version(tmp_path: Path, shared: SharedRepo) -> None:
    repo = copy_of(shared, tmp_path)
    removed = clean(repo, "greet@1.0.0")
    assert [entry.spec for entry in removed] == ["greet@1.0.0"]
    assert not (repo / "greet@1.0.0").exists()
    assert [entry.spec for entry in list_installed(repo)] == ["greet@2.0.0"]


def test_clean_every_version_of_a_name(tmp_path: Path, shared: SharedRepo) -> None:
    repo = copy_of(shared, tmp_path)
    assert [entry.spec for entry in clean(repo, "greet")] == ["greet@1.0.0", "greet@2.0.0"]
    assert list_installed(repo) == []


def test_clean_everything_removes_leftover_installs(tmp_path: Path, shared: SharedRepo) -> None:
    repo = copy_of(shared, tmp_path)
    (repo / ".install-abandoned").mkdir()
    assert len(clean(repo)) == 2
    assert list(repo.iterdir()) == []


def test_default_repo_dir_follows_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATEFN_REPO_DIR", str(tmp_path / "custom"))
    assert default_repo_dir() == tmp_path / "custom"
    monkeypatch.delenv("STATEFN_REPO_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_repo_dir() == tmp_path / ".statefn" / "repo"


# The linker over an installed repo


def test_linker_loads_installed_versions_side_by_side(shared: SharedRepo) -> None:
    linker = Linker(repo=shared.path)
    newest = linker.load("greet")
    older = linker.load("greet@1.0.0")
    assert newest.version == "2.0.0"
    assert newest.exports["hello"]("ada") == "hello ada from 2"
    assert older.exports["hello"]("ada") == "hello ada from 1"
    assert older.module.__file__ == str(shared.from_project.package / "__init__.py")


# Specs and versions


def test_parse_spec() -> None:
    assert parse_spec("http") == ("http", None)
    assert parse_spec("my-adaptor@1.2.3") == ("my-adaptor", "1.2.3")
    assert parse_spec("http@latest") == ("http", None)
    with pytest.raises(AdaptorImportError, match="Invalid adaptor spec '@openfn/http'"):
        parse_spec("@openfn/http")


def test_version_key_orders_releases_numerically() -> None:
    versions = ["1.10.0", "1.2.0", "1.10.0rc1", "0.9", "1.10.0.post1", "2"]
    assert sorted(versions, key=version_key) == [
        "0.9",
        "1.2.0",
        "1.10.0rc1",
        "1.10.0",
        "1.10.0.post1",
        "2",
    ]
