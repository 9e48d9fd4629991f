"""The Git source's one options model, #path= overlays, and the cache bound after each fetch."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from gitrepos import Published

from gitops import open_source
from gitops.errors import InvalidURLError
from gitops.sources.git import GitSource
from gitops.sources.git.options import GitOptions
from gitops.sources.git.verify import VerifyMode
from gitops.testing.gitserver import GitDaemon

MakeRepo = Callable[..., Published]

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


def test_url_fragment_and_keywords_fill_one_model_keywords_winning(tmp_path: Path) -> None:
    url = ("git+https://tok:hunter2@example.com/r.git@main#path=apps&recurse-submodules=true"
           "&timeout=5&protocol_version=2&verify=TagAndHEAD")
    key = tmp_path / "key.asc"
    key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    source = GitSource(url, timeout=9, cache_dir=tmp_path, public_keys=key)
    options = source.options
    assert isinstance(options, GitOptions)
    assert (options.path, options.recurse_submodules, options.timeout,
            options.protocol_version, options.verify) == ("apps", True, 9.0, 2,
                                                          VerifyMode.TAG_AND_HEAD)
    assert options.public_keys == (str(key),)
    assert source.url == ("git+https://example.com/r.git@main#path=apps&recurse-submodules=true"
                          "&timeout=5&protocol_version=2&verify=TagAndHEAD")
    assert "hunter2" not in repr(options) and "hunter2" not in source.url
    source.close()


def test_path_and_semver_keywords_are_the_url_fragment(tmp_path: Path) -> None:
    by_url = open_source("git+git://h/r.git#path=apps/prod&semver=^1.2", cache_dir=tmp_path)
    by_kw = open_source("git+git://h/r.git", path="apps/prod", semver="^1.2", cache_dir=tmp_path)
    assert by_url.url == by_kw.url == "git+git://h/r.git#path=apps/prod&semver=^1.2"
    with pytest.raises(InvalidURLError, match=r"either @REF or semver=RANGE"):
        GitSource("git+git://h/r.git@main", semver="^1")
    with pytest.raises(InvalidURLError, match="invalid semver range"):
        GitSource("git+git://h/r.git", semver="not a range")


@pytest.mark.parametrize("name", ["password", "bearer-token", "ssh_key", "ssh-key-passphrase"])
def test_secrets_are_refused_in_the_url(name: str) -> None:
    with pytest.raises(InvalidURLError, match=r"holds a secret and cannot be written") as info:
        GitSource(f"git+https://h/r.git#{name}=hunter2")
    assert "hunter2" not in str(info.value)


def test_secret_keywords_are_secret_strings(tmp_path: Path) -> None:
    source = GitSource("git+https://h/r.git", username="me", password="hunter2",
                       cache_dir=tmp_path)
    assert "hunter2" not in repr(source.options) and "hunter2" not in str(source.options)
    assert source.options.secret("password") == "hunter2"
    source.close()


def test_unknown_fragment_option_names_the_url_and_the_option_only() -> None:
    with pytest.raises(InvalidURLError, match=r"option ref: Extra inputs") as info:
        GitSource("git+https://u:pw@example.com/r.git#ref=main")
    assert str(info.value).startswith("git+https://u:***@example.com/r.git: ")
    assert "main" not in str(info.value).split(":", 2)[-1].split("(")[0]


# -- #path=: overlays reach their base -------------------------------------------------------


def test_a_kustomize_overlay_with_path_reaches_its_base(
    make_repo: MakeRepo, daemon: GitDaemon, cache: Path, overlay_files: dict[str, str],
    kustomize_build: Callable[[Path], str],
) -> None:
    repo = make_repo(overlay_files)
    with GitSource(daemon.url(repo.name) + "#path=overlays/prod", cache_dir=cache) as source:
        artifact = source.fetch(source.resolve())
    assert artifact.root is not None and (artifact.root / "base" / "cm.yaml").is_file()
    assert "name: prod-base" in kustomize_build(artifact.path)


# -- the cache bound holds after every fetch ------------------------------------------------


def test_after_many_revisions_the_cache_holds_at_most_the_bound(
    make_repo: MakeRepo, daemon: GitDaemon, cache: Path
) -> None:
    repo = make_repo({"blob.yaml": "# " + os.urandom(16 * 1024).hex() + "\n"})
    with GitSource(daemon.url(repo.name), cache_dir=cache) as probe:
        first = probe.fetch(probe.resolve())
    artifact_bytes = sum(f.stat().st_size for f in first.path.rglob("*") if f.is_file())
    mirror = cache / "git" / "repos"
    mirror_bytes = sum(f.stat().st_size for f in mirror.rglob("*") if f.is_file())
    bound = mirror_bytes * 3 + artifact_bytes * 3  # room for the mirror's growth, 2-3 trees
    with GitSource(daemon.url(repo.name), cache_dir=cache, cache_max_bytes=bound) as source:
        for i in range(8):
            repo.commit({"blob.yaml": "# " + os.urandom(16 * 1024).hex() + "\n"})
            artifact = source.fetch(source.resolve())
            held = {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
                    for p in (cache / "artifacts").iterdir()}
            grown = sum(f.stat().st_size for f in mirror.rglob("*") if f.is_file())
            assert artifact.path.is_dir(), "the artifact just fetched is never pruned"
            # what is in use (the mirror, this artifact) stays; everything else fits
            assert sum(held.values()) + grown <= bound or list(held) == [artifact.path.name], (
                f"revision {i}: {held} + {grown} > {bound}")
    assert len(list((cache / "artifacts").iterdir())) <= 3



def test_new_artifacts_are_sized_without_walking_them(
    make_repo: MakeRepo, daemon: GitDaemon, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitops import cache as cache_module

    real = cache_module.tree_size
    walked: list[Path] = []

    def counting(root: Path) -> int:
        walked.append(root)
        return real(root)

    monkeypatch.setattr(cache_module, "tree_size", counting)
    repo = make_repo({f"f{i}.yaml": f"n: {i}\n" * (i + 1) for i in range(20)})
    with GitSource(daemon.url(repo.name), cache_dir=cache) as source:
        first = source.fetch(source.resolve())
        repo.commit({"f3.yaml": "changed: true\n"})
        second = source.fetch(source.resolve())  # 19 files linked, 1 written
    assert walked == [], "the checkout reported the sizes"
    store = cache_module.ArtifactStore(cache)
    for artifact in (first, second):
        assert store.size(artifact.path.name) == real(artifact.path)
