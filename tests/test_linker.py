from __future__ import annotations

import json
import re
import shutil
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from statefn._errors import AdaptorImportError, InputError
from statefn._linker import MAX_CACHE_KEYS, Linker, purge

FIXTURES = Path(__file__).parent / "fixtures" / "adaptors"
GREET_V1 = FIXTURES / "greet_v1"
GREET_V2 = FIXTURES / "greet_v2"


# Modules these tests import: fixture adaptors and the linker's unique copies.
TEST_MODULES = re.compile(r"statefn_linked_|epgreet_pkg|outer|greet_helper|.*__statefn_linked_")


@pytest.fixture(autouse=True)
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with an empty linker cache, and leaves sys.path as it found it and
    no test adaptor in sys.modules."""
    purge()
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    purge()
    for name in [name for name in sys.modules if TEST_MODULES.match(name)]:
        del sys.modules[name]


def make_repo_entry(repo: Path, name: str, version: str, package: Path) -> Path:
    """Lay out ``<repo>/<name>@<version>`` by hand, as ``statefn repo install`` would."""
    entry = repo / f"{name}@{version}"
    shutil.copytree(package, entry / package.name)
    manifest = {"name": name, "version": version, "package": package.name, "source": "test"}
    (entry / "statefn-adaptor.json").write_text(json.dumps(manifest))
    return entry


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    make_repo_entry(repo, "greet", "1.0.0", GREET_V1)
    make_repo_entry(repo, "greet", "2.0.0", GREET_V2)
    return repo


def make_distribution(
    site: Path, dist: str, version: str, entry: str, module: str, package: Path
) -> None:
    """An installed distribution registering ``entry`` in group statefn.adaptors."""
    info = site / f"{dist}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[statefn.adaptors]\n{entry} = {module}\n")
    shutil.copytree(package, site.joinpath(*module.split(".")))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    make_distribution(site, "epgreet", "3.0.0", "epgreet", "epgreet_pkg", GREET_V1)
    monkeypatch.syspath_prepend(str(site))
    return site


def raise_from(function: object) -> str:
    """The file name of the innermost frame of what ``function()`` raised."""
    assert callable(function)
    with pytest.raises(ValueError) as raised:
        function()
    return traceback.extract_tb(raised.value.__traceback__)[-1].filename


# Resolution: path, repo, entry points


def test_path_to_package_loads_its_exports() -> None:
    adaptor = Linker({"greet": {"path": str(GREET_V1)}}).load("greet")
    assert adaptor.name == "greet"
    assert adaptor.version == "1.0.0"  # from the package's __version__
    assert adaptor.source == "path"
    assert adaptor.root == GREET_V1.resolve()
    assert sorted(adaptor.exports) == ["bump", "fail", "hello"]
    assert adaptor.exports["hello"]("ada") == "hello ada from v1"


def test_path_to_single_module_file_loads() -> None:
    adaptor = Linker({"single": {"path": FIXTURES / "single.py"}}).load("single")
    assert adaptor.exports["shout"]("hi") == "HI"
    assert adaptor.version is None
    assert adaptor.root == (FIXTURES / "single.py").resolve()


def test_path_version_from_modules_option_wins_over_dunder_version() -> None:
    adaptor = Linker({"greet": {"path": str(GREET_V1), "version": "1.0.0-dev"}}).load("greet")
    assert adaptor.version == "1.0.0-dev"


def test_path_wins_over_repo(repo: Path) -> None:
    linker = Linker({"greet": {"path": str(GREET_V1)}}, repo=repo)
    adaptor = linker.load("greet")
    assert adaptor.source == "path"
    assert adaptor.exports["hello"]("x") == "hello x from v1"


def test_repo_without_version_loads_highest(repo: Path) -> None:
    adaptor = Linker(repo=repo).load("greet")
    assert adaptor.version == "2.0.0"
    assert adaptor.source == "repo"
    assert adaptor.root == repo / "greet@2.0.0" / "greet_v2"
    assert adaptor.exports["hello"]("x") == "hello x from v2"


def test_repo_highest_version_compares_numbers(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo_entry(repo, "greet", "1.10.0", GREET_V2)
    make_repo_entry(repo, "greet", "1.9.0", GREET_V1)
    make_repo_entry(repo, "greet", "1.10.0rc1", GREET_V1)
    assert Linker(repo=repo).load("greet").version == "1.10.0"


def test_repo_with_version_loads_that_version(repo: Path) -> None:
    adaptor = Linker(repo=repo).load("greet@1.0.0")
    assert adaptor.version == "1.0.0"
    assert adaptor.exports["hello"]("x") == "hello x from v1"


def test_modules_version_chooses_repo_version(repo: Path) -> None:
    adaptor = Linker({"greet": {"version": "1.0.0"}}, repo=repo).load("greet")
    assert adaptor.version == "1.0.0"


def test_latest_means_no_version(repo: Path) -> None:
    assert Linker(repo=repo).load("greet@latest").version == "2.0.0"


def test_entry_point_adaptor_loads_with_distribution_version(site: Path) -> None:
    adaptor = Linker().load("epgreet")
    assert adaptor.version == "3.0.0"
    assert adaptor.source == "entry point"
    assert adaptor.module.__name__ == "epgreet_pkg"
    assert adaptor.root == site / "epgreet_pkg"
    assert adaptor.exports["hello"]("x") == "hello x from v1"


def test_repo_wins_over_entry_point_without_version(tmp_path: Path, site: Path) -> None:
    repo = tmp_path / "repo"
    make_repo_entry(repo, "epgreet", "1.0.0", GREET_V2)
    assert Linker(repo=repo).load("epgreet").source == "repo"


def test_entry_point_serves_version_missing_from_repo(tmp_path: Path, site: Path) -> None:
    repo = tmp_path / "repo"
    make_repo_entry(repo, "epgreet", "1.0.0", GREET_V2)
    adaptor = Linker(repo=repo).load("epgreet@3.0.0")
    assert adaptor.source == "entry point"


def test_shipped_common_adaptor_resolves_by_entry_point() -> None:
    adaptor = Linker().load("common")
    assert adaptor.source == "entry point"
    assert adaptor.module.__name__ == "statefn.adaptors.common"
    assert "fn" in adaptor.exports


# Side by side versions and cache keys


def test_two_versions_load_side_by_side_with_relative_imports(repo: Path) -> None:
    linker = Linker(repo=repo)
    v1 = linker.load("greet@1.0.0")
    v2 = linker.load("greet@2.0.0")
    assert v1.module is not v2.module
    assert v1.module.__name__ != v2.module.__name__
    assert v1.exports["hello"]("x") == "hello x from v1"
    assert v2.exports["hello"]("x") == "hello x from v2"
    assert (
        sys.modules[v1.module.__name__ + ".util"] is not sys.modules[v2.module.__name__ + ".util"]
    )


def test_step_overrides_pick_another_version_for_one_step() -> None:
    run_linker = Linker({"greet": {"path": str(GREET_V1)}})
    step_linker = run_linker.with_overrides({"greet": {"path": str(GREET_V2)}})
    assert step_linker.load("greet").exports["hello"]("x") == "hello x from v2"
    assert run_linker.load("greet").exports["hello"]("x") == "hello x from v1"


def test_step_overrides_replace_an_entry_whole(repo: Path) -> None:
    run_linker = Linker({"greet": {"path": str(GREET_V1), "version": "1.0.0"}}, repo=repo)
    step_linker = run_linker.with_overrides({"greet": {"version": "2.0.0"}})
    assert step_linker.modules == {"greet": {"version": "2.0.0"}}
    assert step_linker.load("greet").source == "repo"


def test_same_cache_key_shares_module_state() -> None:
    modules = {"greet": {"path": str(GREET_V1)}}
    first = Linker(modules, cache_key="run-1").load("greet")
    second = Linker(modules, cache_key="run-1").load("greet")
    assert first.module is second.module
    assert first.exports["bump"]() == 1
    assert second.exports["bump"]() == 2


def test_different_cache_keys_get_fresh_module_state() -> None:
    modules = {"greet": {"path": str(GREET_V1)}}
    first = Linker(modules, cache_key="run-1").load("greet")
    second = Linker(modules, cache_key="run-2").load("greet")
    assert first.module is not second.module
    assert first.exports["bump"]() == 1
    assert second.exports["bump"]() == 1


def test_without_cache_key_modules_are_shared_per_process() -> None:
    modules = {"greet": {"path": str(GREET_V1)}}
    assert Linker(modules).load("greet").module is Linker(modules).load("greet").module


def test_entry_point_adaptor_is_fresh_per_cache_key(site: Path) -> None:
    plain = Linker().load("epgreet")
    first = Linker(cache_key="a").load("epgreet")
    second = Linker(cache_key="b").load("epgreet")
    assert len({id(plain.module), id(first.module), id(second.module)}) == 3
    assert first.module.__name__ != "epgreet_pkg"
    assert first.exports["hello"]("x") == "hello x from v1"  # its relative import works
    assert first.exports["bump"]() == 1
    assert second.exports["bump"]() == 1


def test_entry_point_copy_keeps_relative_imports_above_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    make_distribution(site, "nested", "1.0.0", "nested", "outer.inner", GREET_V1)
    (site / "outer" / "__init__.py").write_text("PREFIX = '>'\n")
    (site / "outer" / "inner" / "extra.py").write_text("from .. import PREFIX\n")
    init = site / "outer" / "inner" / "__init__.py"
    init.write_text(init.read_text() + "\nfrom .extra import PREFIX\n")
    monkeypatch.syspath_prepend(str(site))
    adaptor = Linker(cache_key="k").load("nested")
    assert adaptor.module.__name__.startswith("outer.inner__statefn_linked_")
    assert adaptor.module.PREFIX == ">"


def test_purge_by_key_gives_fresh_modules_next_time() -> None:
    modules = {"greet": {"path": str(GREET_V1)}}
    before = Linker(modules, cache_key="run-1").load("greet")
    assert purge("run-1") == 1
    assert before.module.__name__ not in sys.modules
    after = Linker(modules, cache_key="run-1").load("greet")
    assert after.module is not before.module


def test_purge_without_key_forgets_everything() -> None:
    modules = {"greet": {"path": str(GREET_V1)}}
    Linker(modules).load("greet")
    Linker(modules, cache_key="run-1").load("greet")
    assert purge() == 2
    assert purge() == 0


def test_cache_keeps_a_bounded_number_of_keys() -> None:
    modules = {"greet": {"path": str(GREET_V1)}}
    first = Linker(modules, cache_key="key-0").load("greet")
    for index in range(1, MAX_CACHE_KEYS + 1):
        Linker(modules, cache_key=f"key-{index}").load("greet")
    assert first.module.__name__ not in sys.modules
    assert Linker(modules, cache_key="key-0").load("greet").module is not first.module


# Whitelist


def test_whitelist_matches_whole_name() -> None:
    linker = Linker({"greet-evil": {"path": str(GREET_V1)}}, whitelist=["greet"])
    with pytest.raises(AdaptorImportError) as raised:
        linker.load("greet-evil")
    assert raised.value.message == 'Adaptor "greet-evil" is not on the whitelist'
    assert raised.value.fix == 'Add a pattern matching "greet-evil" to linker.whitelist'


def test_whitelist_admits_matching_name() -> None:
    linker = Linker({"greet": {"path": str(GREET_V1)}}, whitelist=["gr.*", "other"])
    assert linker.load("greet").name == "greet"


@pytest.mark.parametrize(
    ("entry", "admitted"),
    [
        (re.compile(r"^gr"), True),
        (re.compile(r"^reet"), False),
        ("/^gr/", True),
        ("/^GREET$/i", True),
        ("/^GREET$/", False),
        ("/eet$/g", True),
    ],
    ids=str,
)
def test_whitelist_takes_patterns_and_openfn_literals(
    entry: str | re.Pattern[str], admitted: bool
) -> None:
    linker = Linker({"greet": {"path": str(GREET_V1)}}, whitelist=[entry])
    if admitted:
        assert linker.load("greet").name == "greet"
    else:
        with pytest.raises(AdaptorImportError, match="not on the whitelist"):
            linker.load("greet")


def test_whitelist_is_checked_before_loading() -> None:
    linker = Linker({"broken": {"path": str(FIXTURES / "broken")}}, whitelist=["greet"])
    with pytest.raises(AdaptorImportError, match="not on the whitelist"):
        linker.load("broken")


def test_whitelist_applies_to_common() -> None:
    with pytest.raises(AdaptorImportError, match='"common" is not on the whitelist'):
        Linker(whitelist=["http"]).load("common")


def test_step_overrides_keep_the_whitelist() -> None:
    linker = Linker(whitelist=["greet"]).with_overrides({"x": {"path": str(GREET_V1)}})
    with pytest.raises(AdaptorImportError, match='"x" is not on the whitelist'):
        linker.load("x")


def test_invalid_whitelist_pattern_is_input_error() -> None:
    with pytest.raises(InputError) as raised:
        Linker(whitelist=["ok", "("])
    assert raised.value.message.startswith("linker.whitelist[1] is not a valid regular expression")


# Errors and their fixes


def test_missing_adaptor_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(AdaptorImportError) as raised:
        Linker(repo=tmp_path).load("nothing@1.0.0")
    error = raised.value
    assert error.name == "ImportError"
    assert error.severity == "crash"
    assert error.message == (
        f'Adaptor "nothing@1.0.0" was not found in the repo {tmp_path} or the installed packages'
    )
    assert error.fix == (
        "Run: statefn repo install nothing@1.0.0, or give its folder "
        "(linker.modules.nothing.path; on the command line, -a nothing=PATH)"
    )


def test_missing_adaptor_suggests_the_closest_known_one(tmp_path: Path) -> None:
    with pytest.raises(AdaptorImportError) as raised:
        Linker(repo=tmp_path).load("htp")
    assert raised.value.message == (
        f'Adaptor "htp" was not found in the repo {tmp_path} or the installed packages; '
        "did you mean 'http'?"
    )


def test_version_not_found_lists_versions_found(repo: Path) -> None:
    with pytest.raises(AdaptorImportError) as raised:
        Linker(repo=repo).load("greet@3.0.0")
    assert raised.value.message.endswith(": found greet 1.0.0 (repo), 2.0.0 (repo)")
    assert raised.value.fix is not None
    assert raised.value.fix.startswith("Run: statefn repo install greet@3.0.0")


def test_entry_point_version_mismatch_is_import_error(site: Path) -> None:
    with pytest.raises(AdaptorImportError) as raised:
        Linker().load("epgreet@9.9.9")
    assert raised.value.message.endswith(": found epgreet 3.0.0 (installed package)")


def test_path_adaptor_version_mismatch_is_import_error() -> None:
    with pytest.raises(AdaptorImportError) as raised:
        Linker({"greet": {"path": str(GREET_V1)}}).load("greet@2.0.0")
    assert raised.value.message == (
        f'Adaptor "greet" at {GREET_V1.resolve()} is version 1.0.0, not 2.0.0'
    )


def test_spec_version_conflicting_with_modules_version_is_import_error() -> None:
    with pytest.raises(AdaptorImportError) as raised:
        Linker({"greet": {"version": "1.0.0"}}).load("greet@2.0.0")
    assert raised.value.message == (
        'Adaptor "greet@2.0.0" conflicts with linker.modules.greet.version 1.0.0'
    )


def test_missing_path_is_import_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(AdaptorImportError) as raised:
        Linker({"greet": {"path": str(missing)}}).load("greet")
    assert raised.value.message == (
        f'Adaptor "greet": linker.modules.greet.path {missing} does not exist'
    )


def test_folder_without_init_is_import_error(tmp_path: Path) -> None:
    with pytest.raises(AdaptorImportError, match=r"is not a package or a \.py file"):
        Linker({"greet": {"path": str(tmp_path)}}).load("greet")


def test_adaptor_without_all_is_import_error() -> None:
    path = FIXTURES / "no_all"
    with pytest.raises(AdaptorImportError) as raised:
        Linker({"no_all": {"path": str(path)}}).load("no_all")
    assert raised.value.message == f'Adaptor "no_all" ({path.resolve()}) has no __all__'
    assert raised.value.fix == "List the adaptor's public operations in __all__ in its module"


def test_all_naming_undefined_export_is_import_error() -> None:
    linker = Linker({"m": {"path": str(FIXTURES / "missing_export")}})
    with pytest.raises(AdaptorImportError) as raised:
        linker.load("m")
    assert raised.value.message == (
        'Adaptor "m" lists names in __all__ that it does not define: ghost'
    )


def test_import_that_raises_is_import_error_and_leaves_no_modules() -> None:
    path = FIXTURES / "broken"
    with pytest.raises(AdaptorImportError) as raised:
        Linker({"broken": {"path": str(path)}}).load("broken")
    assert raised.value.message == (
        f'Could not import adaptor "broken" from {path.resolve()}: ValueError: broken on purpose'
    )
    assert isinstance(raised.value.__cause__, ValueError)
    assert not [name for name in sys.modules if name.startswith("statefn_linked_broken")]


def test_invalid_spec_is_import_error() -> None:
    with pytest.raises(AdaptorImportError, match="Invalid adaptor spec 'bad name'"):
        Linker().load("bad name")


# Options


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"modules": []}, "linker.modules must be an object"),
        ({"modules": {"http": "x"}}, "linker.modules.http must be an object"),
        ({"modules": {"http": {"path": 3}}}, "linker.modules.http.path must be a string"),
        (
            {"modules": {"http": {"where": "x"}}},
            "linker.modules.http.where is not a module option (expected path, version)",
        ),
        ({"repo": 3}, "linker.repo must be a path"),
        ({"whitelist": "http"}, "linker.whitelist must be a list of regular expressions"),
        ({"whitelist": [1]}, "linker.whitelist[0] must be a string or a compiled pattern"),
        ({"cache_key": 1}, "linker.cache_key must be a string"),
        (
            {"paths": {}},
            "linker.paths is not a linker option (expected modules, repo, whitelist, cache_key)",
        ),
    ],
)
def test_bad_option_is_input_error_naming_field(option: dict[str, object], message: str) -> None:
    with pytest.raises(InputError) as raised:
        Linker.from_option(option)
    assert raised.value.message == message


def test_bad_step_override_names_the_step_field() -> None:
    with pytest.raises(InputError) as raised:
        Linker().with_overrides({"http": {"path": 1}}, field="workflow.steps[2].linker")
    assert raised.value.message == "workflow.steps[2].linker.http.path must be a string"


def test_from_option_builds_linker(repo: Path) -> None:
    linker = Linker.from_option({"repo": str(repo), "whitelist": ["greet"], "cache_key": "k"})
    assert linker.load("greet").version == "2.0.0"
    assert linker.cache_key == "k"


# Imports in job code


@pytest.mark.parametrize("job", ["import greet\n", "from greet import hello\n"], ids=str.strip)
def test_an_import_in_job_code_loads_the_declared_version(repo: Path, job: str) -> None:
    import statefn

    call = "greet.hello" if job.startswith("import") else "hello"
    source = job + f"fn(lambda s: {{**s, 'data': {call}('x')}})\n"
    steps = [
        {"id": "a", "adaptors": ["greet@1.0.0"], "expression": source, "next": "b"},
        {"id": "b", "adaptors": ["greet@2.0.0"], "expression": source.replace("'data'", "'b'")},
    ]
    result = statefn.run({"workflow": {"steps": steps}}, linker={"repo": str(repo)})
    assert result == {"data": "hello x from v1", "b": "hello x from v2"}


# Adaptor frames


def test_frames_of_loaded_adaptor_are_adaptor_files() -> None:
    linker = Linker({"greet": {"path": str(GREET_V1)}})
    adaptor = linker.load("greet")
    filename = raise_from(adaptor.exports["fail"])
    assert filename == str(GREET_V1.resolve() / "__init__.py")
    assert linker.is_adaptor_file(filename)
    assert not linker.is_adaptor_file(__file__)
    assert not Linker().is_adaptor_file(filename)  # another linker never loaded it


def test_step_linker_frames_count_for_the_run_linker() -> None:
    run_linker = Linker()
    step_linker = run_linker.with_overrides({"greet": {"path": str(GREET_V2)}})
    filename = raise_from(step_linker.load("greet").exports["fail"])
    assert run_linker.is_adaptor_file(filename)


def test_shipped_adaptor_files_are_adaptor_files() -> None:
    import statefn

    shipped = Path(statefn.__file__).parent / "adaptors" / "http" / "__init__.py"
    assert Linker().is_adaptor_file(str(shipped))
    assert not Linker().is_adaptor_file(str(Path(statefn.__file__).parent / "_step.py"))
