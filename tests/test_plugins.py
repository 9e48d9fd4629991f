"""The plugin registry, with real entry points from distributions made on the fly."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gitops
from gitops import plugins
from gitops.errors import InvalidURLError, PluginError
from gitops.model import Artifact
from gitops.options import PluginOptions, query_options
from gitops.sources.base import Source
from gitops.sources.directory import DirectorySource
from gitops.targets.filetree import FileTreeTarget
from gitops.targets.memory import MemoryTarget


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("examples/app", "dir"),
        ("./app", "dir"),
        ("/srv/config", "dir"),
        ("dir:app", "dir"),
        ("git+https://example.com/r.git@main", "git"),
        ("git+ssh://git@example.com/r.git", "git"),
        ("oci://127.0.0.1:5000/app:v1", "oci"),
        ("k8s:", "k8s"),
        ("k8s://prod", "k8s"),
        ("MOCK:", "mock"),
    ],
)
def test_split_scheme(url: str, scheme: str) -> None:
    assert plugins.split_scheme(url) == scheme


def test_builtins_come_from_entry_points(tmp_path: Path) -> None:
    infos = {(i.kind, i.name): i for i in plugins.list_plugins()}
    assert infos[("source", "dir")].distribution.startswith("gitops-sdk ")
    assert isinstance(gitops.open_source(str(tmp_path)), DirectorySource)
    assert isinstance(gitops.open_target(f"dir:{tmp_path / 'out'}"), FileTreeTarget)
    assert isinstance(gitops.open_target("mock:"), MemoryTarget)


def test_unknown_scheme_lists_what_is_installed() -> None:
    with pytest.raises(PluginError, match=r"no target plugin for 'nope'") as info:
        gitops.open_target("nope://x")
    installed = str(info.value).split("installed targets:")[1]
    assert "dir" in installed and "mock" in installed


@pytest.fixture
def fake_dists(tmp_path: Path) -> Iterator[Path]:
    """A sys.path entry holding made-up distributions with gitops entry points."""
    sys.path.insert(0, str(tmp_path))
    plugins.refresh()
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("fakeplugin")]:
        del sys.modules[name]
    plugins.refresh()


def make_dist(root: Path, name: str, entry_points: str, module: str = "") -> None:
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    if module:
        (root / f"{name.replace('-', '_')}.py").write_text(module)


GOOD = """
from gitops.targets.memory import MemoryTarget

class Custom(MemoryTarget):
    scheme = "custom"

    @classmethod
    def from_url(cls, url, **options):
        return cls(url)

class NotATarget:
    pass
"""


def test_third_party_plugin_is_found_and_loaded_lazily(fake_dists: Path) -> None:
    make_dist(fake_dists, "fakeplugin-good", "[gitops.targets]\ncustom = fakeplugin_good:Custom\n",
              GOOD)
    assert "fakeplugin_good" not in sys.modules
    target = gitops.open_target("custom:")
    assert type(target).__name__ == "Custom"
    info = next(i for i in plugins.list_plugins() if i.name == "custom")
    assert info.distribution == "fakeplugin-good 1.0" and info.status() == (True, "")


def test_broken_plugin_gives_a_clear_error(fake_dists: Path) -> None:
    make_dist(fake_dists, "fakeplugin-broken",
              "[gitops.targets]\nbroken = fakeplugin_broken:Thing\n", "import no_such_module\n")
    with pytest.raises(PluginError, match=r"'broken'.*fakeplugin-broken 1.0.*no_such_module"):
        gitops.open_target("broken:")
    info = next(i for i in plugins.list_plugins() if i.name == "broken")
    ok, why = info.status()
    assert not ok and "no_such_module" in why


def test_plugin_of_the_wrong_type_is_refused(fake_dists: Path) -> None:
    make_dist(fake_dists, "fakeplugin-wrong",
              "[gitops.targets]\nwrong = fakeplugin_wrong:NotATarget\n", GOOD)
    with pytest.raises(PluginError, match=r"not a subclass of gitops\.targets\.base\.Target"):
        gitops.open_target("wrong:")


def test_a_name_claimed_twice_is_ambiguous_until_chosen(fake_dists: Path) -> None:
    make_dist(fake_dists, "fakeplugin-one", "[gitops.targets]\nmock = fakeplugin_one:Custom\n",
              GOOD)
    with pytest.raises(PluginError, match=r"more than one distribution.*fakeplugin-one 1.0"):
        gitops.open_target("mock:")
    plugins.register("target", "mock", MemoryTarget)
    try:
        assert type(gitops.open_target("mock:")) is MemoryTarget
    finally:
        plugins.unregister("target", "mock")


class Scratch(MemoryTarget):
    @classmethod
    def from_url(cls, url: str, **options: object) -> Scratch:
        return cls(url)


def test_runtime_registration_wins_and_accepts_strings() -> None:
    plugins.register("target", "scratch", f"{Scratch.__module__}:Scratch")
    try:
        assert isinstance(gitops.open_target("scratch:"), Scratch)
    finally:
        plugins.unregister("target", "scratch")
    with pytest.raises(PluginError):
        gitops.open_target("scratch:")
    with pytest.raises(PluginError, match="unknown plugin kind"):
        plugins.register("widget", "x", MemoryTarget)  # type: ignore[arg-type]


# -- options and the public surface ------------------------------------------------------------


class Plain(Source):
    """A third-party source that declares no options model."""

    def __init__(self, url: str) -> None:
        self.url = url

    def resolve(self) -> str:
        return "sha256:" + "0" * 64

    def fetch(self, revision: str) -> Artifact:
        raise NotImplementedError


class TunedOptions(PluginOptions):
    depth: int = 1


class Tuned(Plain):
    Options = TunedOptions
    options: PluginOptions = TunedOptions()

    @classmethod
    def url_options(cls, url: str) -> dict[str, Any]:
        return query_options(url.partition("?")[2])

    @classmethod
    def from_options(cls, url: str, options: PluginOptions) -> Tuned:
        source = cls(url.partition("?")[0])
        source.options = options
        return source


def test_open_source_validates_url_and_keyword_options_once_keywords_winning() -> None:
    plugins.register("source", "plain", Plain)
    plugins.register("source", "tuned", Tuned)
    try:
        assert isinstance(gitops.open_source("plain:x"), Plain)
        with pytest.raises(InvalidURLError, match=r"plain:x: option depth: Extra inputs"):
            gitops.open_source("plain:x", depth=2)
        tuned = gitops.open_source("tuned:x?depth=3")
        assert isinstance(tuned, Tuned) and tuned.options == TunedOptions(depth=3)
        again = gitops.open_source("tuned:x?depth=3", depth=4)
        assert isinstance(again, Tuned) and again.options == TunedOptions(depth=4)
        with pytest.raises(InvalidURLError, match=r"option depth: Input should be a valid int"):
            gitops.open_source("tuned:x?depth=deep")
    finally:
        plugins.unregister("source", "plain")
        plugins.unregister("source", "tuned")


def test_contracts_and_the_whole_error_tree_are_exported() -> None:
    from gitops import errors

    for name in ("Source", "Target", "Differ", "Renderer", "PluginInfo", *errors.__all__):
        assert name in gitops.__all__, name
        assert getattr(gitops, name) is (getattr(errors, name, None) or getattr(gitops, name))
    assert gitops.Source is Source and gitops.PluginInfo is plugins.PluginInfo
    assert gitops.__all__ == sorted(gitops.__all__)
