"""The OCI source's one options model, Artifact.root for #path=, and its bounded cache."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from ocitools import write_tree

import gitops
from gitops.cache import ArtifactStore
from gitops.errors import InvalidURLError
from gitops.sources.oci import OCISource, push
from gitops.sources.oci.options import FLUX_CONTENT, OCISourceOptions
from gitops.testing.registry import LocalRegistry

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


def artifacts_of(cache: Path) -> dict[str, int]:
    """Each cached artifact and its bytes."""
    root = cache / "artifacts"
    return {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            for p in root.iterdir()} if root.is_dir() else {}


# -- options ---------------------------------------------------------------------------------


def test_url_fragment_and_keywords_fill_one_model_keywords_winning() -> None:
    url = ("oci://127.0.0.1:5000/team/app:v1#path=prod&max-files=10&layer_media_type="
           "application/vnd.oci.image.layer.v1.tar%2Bgzip&timeout=5")
    with OCISource(url, timeout=7) as source:
        options = source.options
        assert isinstance(options, OCISourceOptions)
        assert options.path == "prod" and options.max_files == 10 and options.timeout == 7.0
        assert options.layer_media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
        assert source.url == "oci://127.0.0.1:5000/team/app:v1#path=prod"
    with gitops.open_source("oci://127.0.0.1:5000/team/app", path="prod", semver="^1") as kw:
        assert kw.url == "oci://127.0.0.1:5000/team/app#path=prod&semver=^1"
    assert OCISource.from_url(url).options == OCISource(url).options


@pytest.mark.parametrize(("url", "options", "message"), [
    ("oci://h/app:v1#colour=hunter2", {}, r"option colour: Extra inputs.*known options: "),
    ("oci://h/app:v1", {"max_files": 0}, r"option max_files: Input should be greater than 0"),
    ("oci://h/app:v1#password=hunter2", {}, r"option 'password' holds a secret"),
    ("oci://h/app:v1#path=../x", {}, r"option path: .*must stay inside"),
    ("oci://h/app:v1", {"semver": "^1"}, r"semver= selects a tag"),
    ("oci://u:hunter2@h/app:v1", {"timeout": "hunter2"}, r"option timeout: "),
])
def test_a_bad_option_is_one_error_naming_url_and_option_never_the_value(
    url: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidURLError, match=message) as info:
        gitops.open_source(url, **options)
    assert "hunter2" not in str(info.value) and "oci://" in str(info.value)


def test_environment_defaults_still_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITOPS_OCI_INSECURE", "1")
    monkeypatch.setenv("GITOPS_OCI_CA_BUNDLE", "/ca.pem")
    with OCISource("oci://h/app:v1") as source:
        assert source.options.insecure and source.options.ca_bundle == Path("/ca.pem")
    with OCISource("oci://h/app:v1", insecure=False) as explicit:
        assert not explicit.options.insecure, "an option given wins over the environment"
    assert OCISourceOptions().layer_media_type == FLUX_CONTENT


# -- #path=: the whole artifact stays readable -----------------------------------------------


def test_path_points_inside_the_whole_artifact_so_overlays_reach_their_base(
    anon_registry: LocalRegistry, repo: str, tmp_path: Path, cache_dir: Path,
    overlay_files: dict[str, str], kustomize_build: Callable[[Path], str],
) -> None:
    pushed = push(write_tree(tmp_path / "content", overlay_files), anon_registry.url(repo, "v1"))
    with OCISource(anon_registry.url(repo, "v1") + "#path=overlays/prod",
                   cache_dir=cache_dir) as source:
        revision = source.resolve()
        artifact = source.fetch(revision)
        assert source.fetch(revision) is artifact, "same revision, same Artifact"
    assert artifact.root is not None and artifact.path == artifact.root / "overlays" / "prod"
    assert artifact.tree == artifact.root and artifact.digest == pushed.layer_digest
    assert "name: prod-base" in kustomize_build(artifact.path)


# -- the cache stays within its bounds --------------------------------------------------------


def test_after_many_revisions_the_cache_holds_at_most_the_bound(
    anon_registry: LocalRegistry, repo: str, tmp_path: Path, cache_dir: Path
) -> None:
    url = anon_registry.url(repo, "latest")
    bound = 3 * 64 * 1024 + 4096  # three artifacts of ~64 KiB
    sizes = []
    with OCISource(url, cache_dir=cache_dir, cache_max_bytes=bound) as source:
        for i in range(8):
            content = write_tree(tmp_path / f"rev-{i}", {
                "cm.yaml": CM.format(name=f"rev-{i}"),
                "blob.yaml": "# " + os.urandom(32 * 1024).hex() + "\n",  # incompressible
            })
            push(content, url)
            artifact = source.fetch(source.resolve())
            held = artifacts_of(cache_dir)
            sizes.append(sum(held.values()))
            assert artifact.path.name in held, "the artifact just fetched is never pruned"
            assert sum(held.values()) <= bound, f"revision {i}: {held}"
    assert len(artifacts_of(cache_dir)) == 3
    assert sizes[-1] <= bound


def test_an_age_bound_removes_what_was_not_used(anon_registry: LocalRegistry, repo: str,
                                               tmp_path: Path, cache_dir: Path) -> None:
    url = anon_registry.url(repo, "v1")
    push(write_tree(tmp_path / "one", {"a.yaml": CM.format(name="one")}), url)
    with OCISource(url, cache_dir=cache_dir) as source:
        old = source.fetch(source.resolve())
    past = old.path.stat().st_mtime - 30 * 24 * 3600
    os.utime(old.path, (past, past))
    push(write_tree(tmp_path / "two", {"a.yaml": CM.format(name="two")}), url)
    with OCISource(url, cache_dir=cache_dir, cache_max_age=7 * 24 * 3600) as source:
        new = source.fetch(source.resolve())
        assert not old.path.exists() and new.path.is_dir()
        assert source.prune_cache() == []


def test_sizes_are_measured_once(anon_registry: LocalRegistry, repo: str, tmp_path: Path,
                                 cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = anon_registry.url(repo, "v1")
    measured: list[Path] = []
    from gitops import cache as cache_module
    real = cache_module.tree_size

    def counting(root: Path) -> int:
        measured.append(root)
        return real(root)

    monkeypatch.setattr(cache_module, "tree_size", counting)
    with OCISource(url, cache_dir=cache_dir) as source:
        for i in range(3):
            push(write_tree(tmp_path / f"r{i}", {"a.yaml": CM.format(name=f"r{i}")}), url)
            source.fetch(source.resolve())
    assert len(measured) == len(set(measured)) == 3, "each artifact measured exactly once"
    assert ArtifactStore(cache_dir).size(measured[0].name) == real(measured[0])
