"""The file-tree target (``dir:``) on real files: layout, atomicity, safety, inventories."""

from __future__ import annotations

import os
import re
import stat
import tempfile
import threading
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gitops
from gitops.errors import (
    ApplyError,
    InputError,
    InvalidURLError,
    NotSupportedError,
    TargetError,
    UnreachableError,
)
from gitops.model import Inventory, Resource, ResourceKey
from gitops.targets.filetree import FileTreeTarget, key_for_path, path_for_key

# -- helpers -------------------------------------------------------------------------------


def manifest_for(key: ResourceKey, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": key.name}
    if key.namespace:
        metadata["namespace"] = key.namespace
    api_version = f"{key.group}/v1" if key.group else "v1"
    return {"apiVersion": api_version, "kind": key.kind, "metadata": metadata, "spec": spec}


def resource(key: ResourceKey, **spec: Any) -> Resource:
    return Resource.from_manifest(manifest_for(key, **spec))


def snapshot(root: Path) -> dict[str, tuple[str, bytes | str | None]]:
    """Every entry under ``root``: type and content (file bytes, link target)."""
    tree: dict[str, tuple[str, bytes | str | None]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            rel = str(path.relative_to(root))
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                tree[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(mode):
                tree[rel] = ("dir", None)
            else:
                tree[rel] = ("file", path.read_bytes())
    return tree


DEPLOY = ResourceKey("apps", "Deployment", "web", "frontend")
CONFIG = ResourceKey("", "ConfigMap", "web", "settings")
NAMESPACE = ResourceKey("", "Namespace", "", "web")
READER = ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", "system:reader")


@pytest.fixture
def target(tmp_path: Path) -> FileTreeTarget:
    (tmp_path / "tree").mkdir()
    return FileTreeTarget(tmp_path / "tree")


# -- key <-> path mapping ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "path"),
    [
        (DEPLOY, "web/Deployment.apps/frontend.yaml"),
        (CONFIG, "web/ConfigMap/settings.yaml"),
        (NAMESPACE, "_cluster/Namespace/web.yaml"),
        (READER, "_cluster/ClusterRole.rbac.authorization.k8s.io/system:reader.yaml"),
        (ResourceKey("", "ConfigMap", "_cluster", "x"), "%5Fcluster/ConfigMap/x.yaml"),
        (ResourceKey("", "ConfigMap", ".gitops", "x"), "%2Egitops/ConfigMap/x.yaml"),
        (ResourceKey("", "ConfigMap", "web", ".."), "web/ConfigMap/%2E..yaml"),
        (ResourceKey("", "ConfigMap", "web", "a/b%c"), "web/ConfigMap/a%2Fb%25c.yaml"),
        (ResourceKey("", "ConfigMap", "web", "nul\x00\n"), "web/ConfigMap/nul%00%0A.yaml"),
        (ResourceKey("x", "A.b", "web", "n"), "web/A%2Eb.x/n.yaml"),
        (ResourceKey("b.x", "A", "web", "n"), "web/A.b.x/n.yaml"),
        (ResourceKey("", "ConfigMap", "web", "grüße"), "web/ConfigMap/grüße.yaml"),
    ],
)
def test_path_for_key_is_readable_and_reversible(key: ResourceKey, path: str) -> None:
    assert path_for_key(key) == path
    assert key_for_path(path) == key


def test_kinds_differing_only_by_case_stay_distinct() -> None:
    assert path_for_key(ResourceKey("", "Foo", "ns", "a")) != path_for_key(
        ResourceKey("", "foo", "ns", "a")
    )


def test_long_names_are_split_into_folders() -> None:
    key = ResourceKey("", "ConfigMap", "web", "a" * 199 + ".." + "b" * 400)
    path = path_for_key(key)
    parts = PurePosixPath(path).parts
    assert len(parts) > 3
    assert all(p.endswith("%") for p in parts[2:-1])
    assert all(len(p.encode()) <= 255 and not p.startswith(".") for p in parts)
    assert key_for_path(path) == key


@pytest.mark.parametrize(
    "path",
    [
        "README.md",
        ".gitops/dirs.json",
        ".gitops/inventory/default.json",
        "web/ConfigMap/%61.yaml",  # non-canonical spelling of "a"
        "web/ConfigMap/a.yml",
        "web/ConfigMap/x%/y.yaml",  # a split name that is not long
        "/web/ConfigMap/a.yaml",
        "_cluster/%/a.yaml",
    ],
)
def test_key_for_path_rejects_foreign_paths(path: str) -> None:
    with pytest.raises(ValueError, match="not a resource file"):
        key_for_path(path)


@pytest.mark.parametrize(
    "key",
    [
        ResourceKey("", "", "web", "x"),
        ResourceKey("", "ConfigMap", "web", ""),
        ResourceKey("", "ConfigMap", "web", "\ud800"),
        ResourceKey("", "ConfigMap", "n" * 300, "x"),
    ],
)
def test_unmappable_keys_are_rejected(key: ResourceKey) -> None:
    with pytest.raises(ValueError):
        path_for_key(key)


_chars = st.characters(codec="utf-8")  # any text a manifest can hold (no lone surrogates)
_hostile = st.text(alphabet=st.one_of(_chars, st.sampled_from("./%_:\x00\n")))
_keys = st.builds(
    ResourceKey,
    group=st.text(_chars, max_size=20) | st.sampled_from(["", "apps", "rbac.authorization.k8s.io"]),
    kind=_hostile.filter(bool).map(lambda s: s[:20]),
    namespace=_hostile.map(lambda s: s[:20]) | st.sampled_from(["", "_cluster", ".gitops"]),
    name=_hostile.filter(bool) | st.text(alphabet=".aé%/", min_size=240, max_size=700),
)


def _inside(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return (
        not path.startswith("/")
        and "\x00" not in path
        and parts[0] != ".gitops"
        and all(p not in ("", ".", "..") and not p.startswith(".") for p in parts)
        and all(len(p.encode()) <= 255 for p in parts)
    )


@given(st.sets(_keys, max_size=8))
def test_random_keys_map_to_distinct_reversible_paths_inside_the_root(
    keys: set[ResourceKey],
) -> None:
    paths = {key: path_for_key(key) for key in keys}
    assert len(set(paths.values())) == len(keys)
    for key, path in paths.items():
        assert _inside(path), path
        assert key_for_path(path) == key
        # no file is a folder on the way to another key's file
        assert not any(other.startswith(path + "/") for other in paths.values())


@given(st.sets(_keys, min_size=1, max_size=5))
def test_random_keys_round_trip_through_real_files(keys: set[ResourceKey]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        target = FileTreeTarget(tmp)
        for key in keys:
            target.apply(resource(key, marker=key.name))
        live = target.live(keys)
        assert {k: r.manifest["spec"]["marker"] for k, r in live.items()} == {
            k: k.name for k in keys
        }
        for key in keys:
            assert target.delete(key)
        assert sorted(os.listdir(tmp)) == [".gitops"]


# -- apply / live / delete -----------------------------------------------------------------


def test_apply_live_delete_round_trip(target: FileTreeTarget) -> None:
    stored = target.apply(resource(DEPLOY, replicas=2))
    assert stored.origin == "web/Deployment.apps/frontend.yaml"
    assert (target.root / stored.origin).is_file()

    live = target.live([DEPLOY, CONFIG])
    assert list(live) == [DEPLOY]  # the missing one is simply absent
    assert live[DEPLOY].manifest == manifest_for(DEPLOY, replicas=2)
    assert live[DEPLOY].origin == stored.origin
    assert live[DEPLOY].api_version == "apps/v1"

    target.apply(resource(DEPLOY, replicas=3))
    assert target.live([DEPLOY])[DEPLOY].manifest["spec"] == {"replicas": 3}

    assert target.delete(DEPLOY) is True
    assert target.delete(DEPLOY) is False
    assert target.live([DEPLOY]) == {}


def test_files_are_readable_yaml_in_the_given_key_order(target: FileTreeTarget) -> None:
    manifest = manifest_for(CONFIG)
    manifest["data"] = {"z": "ünïcode", "a": "1"}
    target.apply(Resource.from_manifest(manifest))
    text = (target.root / "web/ConfigMap/settings.yaml").read_text("utf-8")
    assert text.index("apiVersion") < text.index("kind") < text.index("metadata")
    assert text.index("z: ünïcode") < text.index("a: '1'")
    assert "data:\n  z: ünïcode\n  a: '1'\n" in text  # block style


def test_apply_refuses_a_manifest_that_names_another_key(target: FileTreeTarget) -> None:
    other = Resource(CONFIG, "v1", manifest_for(ResourceKey("", "ConfigMap", "web", "other")))
    with pytest.raises(ApplyError, match="not the key it was applied under"):
        target.apply(other)
    assert not (target.root / "web").exists()


def test_apply_refuses_a_manifest_yaml_cannot_hold(target: FileTreeTarget) -> None:
    manifest = manifest_for(CONFIG)
    manifest["data"] = {"x": object()}
    with pytest.raises(ApplyError, match="cannot be written as YAML"):
        target.apply(Resource.from_manifest(manifest))


def test_writes_leave_no_temporary_files(target: FileTreeTarget) -> None:
    for i in range(5):
        target.apply(resource(DEPLOY, replicas=i))
    target.write_inventory("default", Inventory({DEPLOY: "apps/v1"}))
    names = {p.name for p in target.root.rglob("*")}
    assert not any(n.startswith(".gitops-tmp") for n in names)


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(
    target: FileTreeTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    target.apply(resource(DEPLOY, replicas=1))
    before = snapshot(target.root)

    def broken_replace(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ApplyError, match=r"frontend\.yaml: No space left"):
        target.apply(resource(DEPLOY, replicas=2))
    with pytest.raises(ApplyError):  # new folders made for it are removed again
        target.apply(resource(NAMESPACE))
    assert snapshot(target.root) == before


def test_fsync_option_syncs_file_and_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    FileTreeTarget(tmp_path, fsync=True).apply(resource(CONFIG))
    assert len(synced) >= 2
    synced.clear()
    FileTreeTarget(tmp_path).apply(resource(CONFIG))
    assert synced == []


def test_dry_run_writes_nothing(target: FileTreeTarget) -> None:
    target.apply(resource(DEPLOY, replicas=1))
    target.delete(DEPLOY)  # leaves .gitops/dirs.json behind
    target.apply(resource(CONFIG))
    before = snapshot(target.root)

    assert target.apply(resource(DEPLOY), dry_run=True).origin == path_for_key(DEPLOY)
    target.apply(resource(CONFIG, changed=True), dry_run=True)
    target.apply(resource(READER), dry_run=True)
    assert target.delete(CONFIG, dry_run=True) is True
    assert target.delete(NAMESPACE, dry_run=True) is False

    assert snapshot(target.root) == before


def test_dry_run_and_apply_report_a_file_in_the_way(target: FileTreeTarget) -> None:
    (target.root / "web").write_text("not a folder")
    before = snapshot(target.root)
    for dry_run in (True, False):
        with pytest.raises(ApplyError, match=r"web: is not a folder") as info:
            target.apply(resource(CONFIG), dry_run=dry_run)
        assert str(CONFIG) in str(info.value)
    assert target.delete(CONFIG) is False  # cannot exist below a file
    assert target.live([CONFIG]) == {}
    assert snapshot(target.root) == before


def test_dry_run_reports_a_folder_where_the_file_belongs(target: FileTreeTarget) -> None:
    (target.root / "web/ConfigMap/settings.yaml").mkdir(parents=True)
    with pytest.raises(ApplyError, match="is not a regular file"):
        target.apply(resource(CONFIG), dry_run=True)
    with pytest.raises(TargetError, match="is a folder"):
        target.live([CONFIG])


def test_a_broken_file_raises_naming_it(target: FileTreeTarget) -> None:
    target.apply(resource(CONFIG))
    path = target.root / "web/ConfigMap/settings.yaml"
    for text in ("key: [unclosed\n", "- just\n- a list\n", "when: 2024-13-45\n"):
        path.write_text(text)
        with pytest.raises(TargetError, match=re.escape(str(path))):
            target.live([CONFIG])


# -- links, user files, folders ------------------------------------------------------------


def test_symlink_at_a_resource_path_is_never_followed(
    target: FileTreeTarget, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("precious: true\n")
    link = target.root / "web/ConfigMap/settings.yaml"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    before = snapshot(tmp_path)

    with pytest.raises(ApplyError, match="symbolic link"):
        target.delete(CONFIG)
    with pytest.raises(ApplyError, match="symbolic link"):
        target.delete(CONFIG, dry_run=True)
    with pytest.raises(ApplyError, match="symbolic link"):
        target.apply(resource(CONFIG))
    with pytest.raises(TargetError, match="symbolic link"):
        target.live([CONFIG])
    assert snapshot(tmp_path) == before


def test_symlinked_folder_on_the_way_is_never_followed(
    target: FileTreeTarget, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "ConfigMap").mkdir(parents=True)
    (elsewhere / "ConfigMap/settings.yaml").write_text("apiVersion: v1\n")
    (target.root / "web").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(tmp_path)

    with pytest.raises(ApplyError, match=r"web: is a symbolic link"):
        target.delete(CONFIG)
    with pytest.raises(ApplyError, match=r"web: is a symbolic link"):
        target.apply(resource(CONFIG))
    with pytest.raises(ApplyError, match=r"web: is a symbolic link"):
        target.apply(resource(DEPLOY), dry_run=True)
    with pytest.raises(TargetError, match=r"web: is a symbolic link"):
        target.live([CONFIG])
    assert snapshot(tmp_path) == before


def test_user_files_and_folders_are_never_touched(target: FileTreeTarget) -> None:
    root = target.root
    (root / "README.md").write_text("# my tree\n")
    (root / "team").mkdir()  # a user's folder that resources then go into
    (root / "web/notes").mkdir(parents=True)
    (root / "web/notes/todo.txt").write_text("keep me")
    user = snapshot(root)

    team_key = ResourceKey("", "ConfigMap", "team", "x")
    for key in (team_key, CONFIG, DEPLOY, NAMESPACE):
        target.apply(resource(key))
    for key in (team_key, CONFIG, DEPLOY, NAMESPACE):
        assert target.delete(key)

    after = snapshot(root)
    assert {k: v for k, v in after.items() if not k.startswith(".gitops")} == user


def test_folders_created_by_the_target_are_removed_when_empty(target: FileTreeTarget) -> None:
    root = target.root
    target.apply(resource(CONFIG))
    target.apply(resource(DEPLOY))
    target.delete(CONFIG)
    assert not (root / "web/ConfigMap").exists()
    assert (root / "web/Deployment.apps").is_dir()  # still holds a resource
    target.delete(DEPLOY)
    assert not (root / "web").exists()
    assert sorted(os.listdir(root)) == [".gitops"]


def test_a_folder_holding_a_users_file_is_kept(target: FileTreeTarget) -> None:
    target.apply(resource(CONFIG))
    (target.root / "web/ConfigMap/keep.txt").write_text("mine")
    target.delete(CONFIG)
    assert (target.root / "web/ConfigMap/keep.txt").read_text() == "mine"


def test_a_folder_recreated_by_a_user_is_kept(target: FileTreeTarget) -> None:
    target.apply(resource(CONFIG))
    # The user moves the target's folder away and makes their own in its place.
    (target.root / "web/ConfigMap").rename(target.root / "web/moved")
    (target.root / "web/ConfigMap").mkdir()
    target.apply(resource(CONFIG))
    target.delete(CONFIG)
    assert (target.root / "web/ConfigMap").is_dir()


def test_a_corrupt_ledger_raises_before_deleting(target: FileTreeTarget) -> None:
    target.apply(resource(CONFIG))
    (target.root / ".gitops/dirs.json").write_text("{broken")
    with pytest.raises(TargetError, match=r"dirs\.json: corrupt ledger"):
        target.delete(CONFIG)
    assert target.live([CONFIG])
    with pytest.raises(TargetError, match=r"dirs\.json: corrupt ledger"):
        target.apply(resource(NAMESPACE))  # needs new folders, so the ledger
    assert not (target.root / "_cluster").exists()
    assert (target.root / ".gitops/dirs.json").read_text() == "{broken"


def test_concurrent_apply_and_delete_in_shared_folders(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        target = FileTreeTarget(tmp_path)  # separate instances share the root's lock
        try:
            for i in range(15):
                key = ResourceKey("", "ConfigMap", "shared", f"w{n}-{i}")
                target.apply(resource(key))
                assert target.delete(key)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(os.listdir(tmp_path)) == [".gitops"]


# -- inventories ---------------------------------------------------------------------------


def test_inventory_round_trip(target: FileTreeTarget) -> None:
    assert target.read_inventory("default") is None
    inventory = Inventory({DEPLOY: "apps/v1", NAMESPACE: "v1"}, revision="main@sha1:" + "a" * 40)
    target.write_inventory("default", inventory)
    assert target.read_inventory("default") == inventory
    assert (target.root / ".gitops/inventory/default.json").is_file()
    target.write_inventory("default", Inventory({}))
    assert target.read_inventory("default") == Inventory({})
    assert target.read_inventory("other") is None


def test_inventory_names_cannot_escape(target: FileTreeTarget) -> None:
    target.write_inventory("../../evil", Inventory({}))
    assert target.read_inventory("../../evil") == Inventory({})
    assert os.listdir(target.root / ".gitops/inventory") == ["%2E.%2F..%2Fevil.json"]
    with pytest.raises(InputError):
        target.write_inventory("", Inventory({}))


@pytest.mark.parametrize("text", ["{not json", "[]", '{"entries": [{"group": ""}]}', "\xff"])
def test_a_corrupt_inventory_raises_naming_the_file(target: FileTreeTarget, text: str) -> None:
    path = target.root / ".gitops/inventory/default.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(TargetError, match=re.escape(str(path))):
        target.read_inventory("default")


# -- opening -------------------------------------------------------------------------------


def test_open_target_by_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    target = gitops.open_target("dir:out")
    assert isinstance(target, FileTreeTarget)
    assert target.url == f"dir:{tmp_path / 'out'}"
    assert not (tmp_path / "out").exists()  # opening creates nothing; the first write does
    for url, path in [
        (f"dir://{tmp_path}/a%20b#c", tmp_path / "a%20b#c"),  # literal, as for sources
        (f"dir:{tmp_path}/d?", tmp_path / "d"),  # an empty query
        ("DIR:e", tmp_path / "e"),
        ("plain", tmp_path / "plain"),
        ("plain?fsync=1", tmp_path / "plain?fsync=1"),  # a bare path is taken literally
    ]:
        opened = gitops.open_target(url)
        assert isinstance(opened, FileTreeTarget)
        assert opened.root == path
        assert opened.options.fsync is False


@pytest.mark.parametrize("url", ["", "dir:", "dir://", "dir://host/srv", "mock:x"])
def test_invalid_urls(url: str) -> None:
    with pytest.raises(InvalidURLError):
        FileTreeTarget.from_url(url)


def test_root_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(UnreachableError, match=re.escape(str(path))):
        FileTreeTarget(path)
    with pytest.raises(UnreachableError, match=re.escape(str(path))):
        FileTreeTarget(path / "below")


def test_missing_root_without_create(tmp_path: Path) -> None:
    with pytest.raises(UnreachableError, match=re.escape(str(tmp_path / "nope"))):
        FileTreeTarget(tmp_path / "nope", create=False)
    assert not (tmp_path / "nope").exists()


def test_unwritable_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    with pytest.raises(UnreachableError, match="not writable"):
        FileTreeTarget(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_root_for_real(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(UnreachableError, match=re.escape(str(tmp_path))):
            FileTreeTarget(tmp_path)
    finally:
        tmp_path.chmod(0o755)


def test_vanished_root_reads_as_empty_unless_it_must_exist(tmp_path: Path) -> None:
    (tmp_path / "gone").mkdir()
    target = FileTreeTarget(tmp_path / "gone")
    strict = FileTreeTarget(tmp_path / "gone", create=False)
    (tmp_path / "gone").rmdir()
    assert target.live([CONFIG]) == {}
    assert target.read_inventory("default") is None
    with pytest.raises(UnreachableError, match="gone"):
        strict.live([CONFIG])
    with pytest.raises(UnreachableError, match="gone"):
        strict.apply(resource(CONFIG))
    assert not (tmp_path / "gone").exists()
    target.apply(resource(CONFIG))  # a write makes it again
    assert (tmp_path / "gone" / "web/ConfigMap/settings.yaml").is_file()


def test_capabilities(target: FileTreeTarget) -> None:
    assert target.scheme == "dir"
    assert target.supports_dry_run is True
    assert target.supports_health is False
    assert target.is_namespaced("apps", "Deployment") is None
    with pytest.raises(NotSupportedError):
        target.health(resource(CONFIG))
