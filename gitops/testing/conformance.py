"""Conformance suites for Source and Target plugins: subclass, add a fixture, run pytest.

Each suite checks the contract in ``gitops/sources/base.py`` or
``gitops/targets/base.py`` against one backend, with hostile inputs on purpose
(unicode values and file names, names with ``:`` and ``.``, 253-character names, many
keys). A plugin author runs them from the plugin's own tests::

    # tests/test_conformance.py of a plugin
    import pytest
    from gitops.testing.conformance import SourceConformance, TargetConformance

    from my_plugin import MySource, MyTarget


    class TestMyTarget(TargetConformance):
        @pytest.fixture
        def target(self, tmp_path):
            return MyTarget.from_url(f"my:{tmp_path}")  # fresh and empty


    class TestMySource(SourceConformance):
        @pytest.fixture
        def make_source(self, tmp_path):
            def make(files):  # {relative path: text} -> a Source holding exactly those files
                ...
            return make

        @pytest.fixture
        def update_source(self):
            def update(source, files):  # replace the source's whole content with ``files``
                ...
            return update

To skip or expect a failure of one inherited test, override it in the subclass (e.g.
with ``pytest.mark.xfail``). Capabilities the target declares (``supports_dry_run``,
``supports_health``) decide which tests run. Objects a test applies are deleted by an
autouse fixture, and namespaced objects live in fresh namespaces, so the target suite
can also run against a shared cluster. pytest rewrites asserts only in test modules;
the messages here say what failed either way, or call
``pytest.register_assert_rewrite("gitops.testing.conformance")`` in your conftest.py.

These classes must never be collected on their own (no ``Test`` prefix), never rely on
one backend's quirks, and never leave objects or open handles behind.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gitops.model import Artifact, HealthStatus, Inventory, Resource, ResourceKey
from gitops.sources.base import Source
from gitops.targets.base import Target

__all__ = ["SourceConformance", "TargetConformance"]

Apply = Callable[..., Resource]
MakeSource = Callable[[dict[str, str]], Source]
UpdateSource = Callable[[Source, dict[str, str]], None]

UNICODE_TEXT = "grüße, 日本語, ελληνικά, emoji 🚀, combining é, RTL עברית, \u2028 line sep"
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_RBAC = "rbac.authorization.k8s.io"


def _suffix() -> str:
    return uuid.uuid4().hex[:8]


def configmap(name: str, namespace: str, data: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A ConfigMap manifest (namespaced, core group)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "conformance"}},
        "data": dict(data if data is not None else {"key": "value"}),
    }


def cluster_role(name: str) -> dict[str, Any]:
    """A ClusterRole manifest (cluster-scoped, named group; its names may contain ':')."""
    return {
        "apiVersion": f"{_RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    }


def namespace_manifest(name: str) -> dict[str, Any]:
    """A Namespace manifest (cluster-scoped)."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def key_of(manifest: Mapping[str, Any]) -> ResourceKey:
    """The key of a manifest built by the helpers above."""
    return Resource.from_manifest(dict(manifest)).key


def long_name(length: int = 253) -> str:
    """A valid DNS subdomain of ``length`` characters: dot-separated labels of <= 63."""
    labels: list[str] = []
    remaining = length
    while remaining > 0:
        size = min(63, remaining)
        if remaining - size == 1:  # the next label needs a dot and at least one character
            size -= 1
        labels.append("abcdefghij"[len(labels) % 10] * size)
        remaining -= size + 1
    return ".".join(labels)


def assert_contains(actual: Any, expected: Any, path: str = "") -> None:
    """Assert that ``actual`` has every field of ``expected`` with an equal value.

    Extra fields in ``actual`` (server-added) are allowed; lists must have the same
    length and each item must contain the expected item.
    """
    where = path or "<root>"
    if isinstance(expected, Mapping):
        assert isinstance(actual, Mapping), f"{where}: expected a mapping, got {actual!r}"
        for field, value in expected.items():
            assert field in actual, f"{where}: field {field!r} missing from live object"
            assert_contains(actual[field], value, f"{path}.{field}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), (
            f"{where}: {len(actual)} items, applied {len(expected)}"
        )
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            assert_contains(got, want, f"{path}[{index}]")
    else:
        assert actual == expected, f"{where}: live has {actual!r}, applied {expected!r}"


class TargetConformance:
    """The Target contract as pytest tests. Provide a ``target`` fixture: a fresh, empty Target."""

    # -- fixtures a backend provides -------------------------------------------------------

    @pytest.fixture
    def target(self) -> Target:
        """A fresh, empty target. Override in the backend's test class."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `target` fixture returning a fresh, empty "
            "Target (see gitops.testing.conformance)"
        )

    # -- capability fixtures: read what the target declares --------------------------------

    @pytest.fixture
    def supports_dry_run(self, target: Target) -> bool:
        return type(target).supports_dry_run

    @pytest.fixture
    def supports_health(self, target: Target) -> bool:
        return type(target).supports_health

    # -- helpers and cleanup ---------------------------------------------------------------

    @pytest.fixture
    def _created(self) -> list[ResourceKey]:
        return []

    @pytest.fixture(autouse=True)
    def _cleanup(self, target: Target, _created: list[ResourceKey]) -> Iterator[None]:
        """Delete what the test applied (newest first), then close the target."""
        yield
        for key in reversed(_created):
            with contextlib.suppress(Exception):
                target.delete(key)
        target.close()

    @pytest.fixture
    def apply(self, target: Target, _created: list[ResourceKey]) -> Apply:
        """``apply(manifest, dry_run=False) -> Resource``, remembering what to clean up."""

        def apply(manifest: dict[str, Any], *, dry_run: bool = False) -> Resource:
            resource = Resource.from_manifest(manifest, origin="conformance")
            result = target.apply(resource, dry_run=dry_run)
            if not dry_run and resource.key not in _created:
                _created.append(resource.key)
            return result

        return apply

    @pytest.fixture
    def new_namespace(self, apply: Apply) -> Callable[[], str]:
        """``new_namespace() -> name`` of a fresh Namespace applied to the target."""

        def new_namespace() -> str:
            name = f"conformance-{_suffix()}"
            apply(namespace_manifest(name))
            return name

        return new_namespace

    @pytest.fixture
    def namespace(self, new_namespace: Callable[[], str]) -> str:
        return new_namespace()

    @staticmethod
    def live_one(target: Target, key: ResourceKey) -> Resource | None:
        return target.live([key]).get(key)

    # -- reading ---------------------------------------------------------------------------

    def test_live_of_no_keys_is_empty(self, target: Target) -> None:
        assert target.live([]) == {}, "live([]) must return {}"

    def test_live_of_absent_keys_is_empty(self, target: Target) -> None:
        absent = [
            ResourceKey("", "ConfigMap", f"absent-{_suffix()}", "absent"),
            ResourceKey("", "Namespace", "", f"absent-{_suffix()}"),
            ResourceKey(_RBAC, "ClusterRole", "", f"absent:{_suffix()}"),
        ]
        assert target.live(absent) == {}, "absent objects must simply be missing from live()"

    def test_live_returns_only_the_asked_keys(
        self, target: Target, apply: Apply, namespace: str
    ) -> None:
        keys = [key_of(apply(configmap(f"cm-{i}", namespace)).manifest) for i in range(3)]
        absent = ResourceKey("", "ConfigMap", namespace, "absent")
        live = target.live([keys[0], keys[2], absent])
        assert set(live) == {keys[0], keys[2]}, f"asked for 2 present keys, got {sorted(live)}"

    # -- applying --------------------------------------------------------------------------

    def test_apply_then_live_returns_every_applied_field(
        self, target: Target, apply: Apply, namespace: str
    ) -> None:
        manifest = configmap("web", namespace, {"greeting": UNICODE_TEXT, "empty": ""})
        manifest["metadata"]["annotations"] = {"example.com/note": UNICODE_TEXT}
        apply(manifest)
        live = self.live_one(target, key_of(manifest))
        assert live is not None, f"{key_of(manifest)} missing after apply"
        assert live.key == key_of(manifest)
        assert live.api_version == "v1"
        assert_contains(live.manifest, configmap("web", namespace, manifest["data"]))
        assert_contains(
            live.manifest, {"metadata": {"annotations": {"example.com/note": UNICODE_TEXT}}}
        )

    def test_apply_returns_the_stored_resource_with_the_same_key(
        self, apply: Apply, namespace: str
    ) -> None:
        manifest = configmap("returned", namespace)
        result = apply(manifest)
        assert isinstance(result, Resource), f"apply returned {type(result).__name__}"
        assert result.key == key_of(manifest)
        assert_contains(result.manifest, configmap("returned", namespace))

    def test_update_replaces_fields(self, target: Target, apply: Apply, namespace: str) -> None:
        apply(configmap("updated", namespace, {"kept": "1", "changed": "old", "dropped": "x"}))
        apply(configmap("updated", namespace, {"kept": "1", "changed": "new", "added": "y"}))
        live = self.live_one(target, ResourceKey("", "ConfigMap", namespace, "updated"))
        assert live is not None
        assert live.manifest["data"] == {"kept": "1", "changed": "new", "added": "y"}, (
            f"after an update, data must be what was applied last: {live.manifest['data']!r}"
        )

    def test_applied_object_is_independent_of_the_callers_dict(
        self, target: Target, apply: Apply, namespace: str
    ) -> None:
        manifest = configmap("independent", namespace, {"key": "before"})
        apply(manifest)
        manifest["data"]["key"] = "after"
        manifest["metadata"]["labels"]["app"] = "changed"
        manifest["extra"] = True
        live = self.live_one(target, ResourceKey("", "ConfigMap", namespace, "independent"))
        assert live is not None
        assert live.manifest["data"]["key"] == "before", "live state aliases the caller's dict"
        assert live.manifest["metadata"]["labels"]["app"] == "conformance"
        assert "extra" not in live.manifest

    # -- identity and scope ----------------------------------------------------------------

    def test_cluster_scoped_and_namespaced_objects_coexist(
        self, target: Target, apply: Apply, namespace: str
    ) -> None:
        role = cluster_role(namespace)  # the same name at cluster and namespace scope
        cm = configmap(namespace, namespace)
        apply(role)
        apply(cm)
        keys = [key_of(namespace_manifest(namespace)), key_of(role), key_of(cm)]
        assert set(target.live(keys)) == set(keys)
        assert target.delete(key_of(cm)) is True
        assert set(target.live(keys)) == set(keys[:2]), "deleting one object removed another"

    def test_same_name_in_other_namespaces_and_kinds_is_distinct(
        self, target: Target, apply: Apply, new_namespace: Callable[[], str]
    ) -> None:
        first, second = new_namespace(), new_namespace()
        apply(configmap("same", first, {"where": "first"}))
        apply(configmap("same", second, {"where": "second"}))
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "same", "namespace": first},
            "type": "Opaque",
            "stringData": {"where": "secret"},
        }
        apply(secret)
        keys = [
            ResourceKey("", "ConfigMap", first, "same"),
            ResourceKey("", "ConfigMap", second, "same"),
            key_of(secret),
        ]
        live = target.live(keys)
        assert set(live) == set(keys)
        assert live[keys[0]].manifest["data"] == {"where": "first"}
        assert live[keys[1]].manifest["data"] == {"where": "second"}

    def test_is_namespaced_answers_true_false_or_none(self, target: Target) -> None:
        assert target.is_namespaced("", "ConfigMap") in (True, None)
        assert target.is_namespaced("", "Namespace") in (False, None)
        assert target.is_namespaced(_RBAC, "ClusterRole") in (False, None)

    # -- hostile inputs --------------------------------------------------------------------

    def test_unicode_values_round_trip(self, target: Target, apply: Apply, namespace: str) -> None:
        data = {f"k{i}": value for i, value in enumerate(UNICODE_TEXT.split(", "))}
        data["multiline"] = "line 1\nline 2\n\ttabbed\n"
        data["quotes"] = "'single' \"double\" `back` \\ backslash: colon # hash"
        apply(configmap("unicode", namespace, data))
        live = self.live_one(target, ResourceKey("", "ConfigMap", namespace, "unicode"))
        assert live is not None
        assert live.manifest["data"] == data

    def test_names_with_colons_and_dots(self, target: Target, apply: Apply, namespace: str) -> None:
        role = cluster_role(f"conformance:aggregate.to-view:{_suffix()}")
        cm = configmap(f"app.example.com-{_suffix()}", namespace)
        apply(role)
        apply(cm)
        assert set(target.live([key_of(role), key_of(cm)])) == {key_of(role), key_of(cm)}
        assert target.delete(key_of(role)) is True
        assert target.delete(key_of(cm)) is True
        assert target.live([key_of(role), key_of(cm)]) == {}

    def test_long_names(self, target: Target, apply: Apply, namespace: str) -> None:
        name = long_name(253)
        apply(configmap(name, namespace))
        live = self.live_one(target, ResourceKey("", "ConfigMap", namespace, name))
        assert live is not None, "a 253-character name (the Kubernetes maximum) must work"
        assert live.name == name

    def test_many_keys(self, target: Target, apply: Apply, namespace: str) -> None:
        keys = [
            key_of(apply(configmap(f"many-{i:03d}", namespace, {"i": str(i)})).manifest)
            for i in range(100)
        ]
        live = target.live(keys)
        assert set(live) == set(keys), f"{len(live)} of {len(keys)} objects returned"
        assert all(live[k].manifest["data"] == {"i": str(int(k.name[5:]))} for k in keys)

    # -- deleting --------------------------------------------------------------------------

    def test_delete_returns_true_then_false(
        self, target: Target, apply: Apply, namespace: str
    ) -> None:
        key = key_of(apply(configmap("deleted", namespace)).manifest)
        assert target.delete(key) is True, "deleting an existing object must return True"
        assert target.live([key]) == {}
        assert target.delete(key) is False, "deleting it again must return False"

    def test_delete_of_an_absent_key_is_false(self, target: Target) -> None:
        assert target.delete(ResourceKey("", "ConfigMap", f"absent-{_suffix()}", "x")) is False
        assert target.delete(ResourceKey(_RBAC, "ClusterRole", "", f"absent:{_suffix()}")) is False

    # -- dry run ---------------------------------------------------------------------------

    def test_dry_run_apply_changes_nothing(
        self, target: Target, apply: Apply, namespace: str, supports_dry_run: bool
    ) -> None:
        if not supports_dry_run:
            pytest.skip("target does not declare supports_dry_run")
        created = configmap("dry-created", namespace)
        result = apply(created, dry_run=True)
        assert result.key == key_of(created)
        assert target.live([key_of(created)]) == {}, "a dry-run create wrote the object"
        apply(configmap("dry-updated", namespace, {"v": "1"}))
        apply(configmap("dry-updated", namespace, {"v": "2"}), dry_run=True)
        live = self.live_one(target, ResourceKey("", "ConfigMap", namespace, "dry-updated"))
        assert live is not None and live.manifest["data"] == {"v": "1"}, "a dry-run update wrote"

    def test_dry_run_delete_changes_nothing(
        self, target: Target, apply: Apply, namespace: str, supports_dry_run: bool
    ) -> None:
        if not supports_dry_run:
            pytest.skip("target does not declare supports_dry_run")
        key = key_of(apply(configmap("dry-deleted", namespace)).manifest)
        assert target.delete(key, dry_run=True) is True
        assert set(target.live([key])) == {key}, "a dry-run delete removed the object"
        absent = ResourceKey("", "ConfigMap", namespace, "absent")
        assert target.delete(absent, dry_run=True) is False

    # -- inventories -----------------------------------------------------------------------

    def test_inventory_is_none_before_any_write(self, target: Target) -> None:
        assert target.read_inventory(f"conformance-{_suffix()}") is None

    def test_inventory_round_trips_entries_and_revision(self, target: Target) -> None:
        name = f"conformance-{_suffix()}"
        entries = {
            ResourceKey("apps", "Deployment", "team-a", "web"): "apps/v1",
            ResourceKey("", "Namespace", "", "team-a"): "v1",
            ResourceKey(_RBAC, "ClusterRole", "", "system:aggregate.to-view"): f"{_RBAC}/v1",
            ResourceKey("", "ConfigMap", "team-a", long_name(253)): "v1",
        }
        revision = "main@sha1:" + "0123456789abcdef" * 2 + "01234567"
        target.write_inventory(name, Inventory(entries, revision))
        read = target.read_inventory(name)
        assert read is not None, "a written inventory must be readable"
        assert dict(read.entries) == entries
        assert read.revision == revision

    def test_inventory_with_many_entries_and_empty_inventory(self, target: Target) -> None:
        name, empty = f"conformance-{_suffix()}", f"conformance-{_suffix()}"
        entries = {ResourceKey("", "ConfigMap", "ns", f"cm-{i}"): "v1" for i in range(1000)}
        target.write_inventory(name, Inventory(entries, "sha256:" + "a" * 64))
        target.write_inventory(empty, Inventory({}, ""))
        many, none = target.read_inventory(name), target.read_inventory(empty)
        assert many is not None and dict(many.entries) == entries
        assert none is not None, "an empty inventory is not the same as no inventory"
        assert dict(none.entries) == {} and none.revision == ""

    def test_inventory_overwrite_replaces(self, target: Target) -> None:
        name = f"conformance-{_suffix()}"
        old = {ResourceKey("", "ConfigMap", "ns", "old"): "v1"}
        new = {ResourceKey("", "ConfigMap", "ns", "new"): "v1"}
        target.write_inventory(name, Inventory(old, "r1"))
        target.write_inventory(name, Inventory(new, "r2"))
        read = target.read_inventory(name)
        assert read is not None and dict(read.entries) == new and read.revision == "r2"

    def test_inventories_of_two_names_are_independent(self, target: Target) -> None:
        first, second = f"conformance-a-{_suffix()}", f"conformance-b-{_suffix()}"
        a = {ResourceKey("", "ConfigMap", "ns", "a"): "v1"}
        b = {ResourceKey("", "ConfigMap", "ns", "b"): "v1"}
        target.write_inventory(first, Inventory(a, "ra"))
        target.write_inventory(second, Inventory(b, "rb"))
        read_a, read_b = target.read_inventory(first), target.read_inventory(second)
        assert read_a is not None and dict(read_a.entries) == a and read_a.revision == "ra"
        assert read_b is not None and dict(read_b.entries) == b and read_b.revision == "rb"

    # -- health ----------------------------------------------------------------------------

    def test_health_returns_a_health_status(
        self, target: Target, apply: Apply, namespace: str, supports_health: bool
    ) -> None:
        if not supports_health:
            pytest.skip("target does not declare supports_health")
        manifest = configmap("healthy", namespace)
        apply(manifest)
        live = self.live_one(target, key_of(manifest))
        assert live is not None
        assert isinstance(target.health(live), HealthStatus)

    # -- lifecycle -------------------------------------------------------------------------

    def test_url_is_a_credential_free_string(self, target: Target) -> None:
        assert isinstance(target.url, str) and target.url
        _assert_no_credentials(target.url)

    def test_close_is_idempotent_and_context_manager_returns_self(self, target: Target) -> None:
        with target as entered:
            assert entered is target
        target.close()
        target.close()


# -- sources ---------------------------------------------------------------------------

FILES: dict[str, str] = {
    "kustomization.yaml": "resources:\n- app/deployment.yaml\n",
    "app/deployment.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n"
    ),
    "app/config.map.yaml": (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  text: '{UNICODE_TEXT}'\n"
    ),
    "app/ünïcødé names/wïth space.yaml": "# a file name with unicode and a space\n{}\n",
    "deep/a/b/c/d/e.yaml": "---\n# empty document\n...\n",
}


class SourceConformance:
    """The Source contract as pytest tests.

    Provide ``make_source`` (``files -> Source`` holding exactly those files) and
    ``update_source`` (``(source, files)``: replace the source's whole content).
    """

    # -- fixtures a backend provides -------------------------------------------------------

    @pytest.fixture
    def make_source(self) -> MakeSource:
        """``make_source(files) -> Source``; files maps relative paths to text."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `make_source` fixture: a callable taking "
            "{relative path: text} and returning a Source holding exactly those files"
        )

    @pytest.fixture
    def update_source(self) -> UpdateSource:
        """``update_source(source, files)``: make ``files`` the source's whole new content."""
        raise NotImplementedError(
            f"{type(self).__name__} must define an `update_source` fixture: a callable "
            "taking (source, {relative path: text}) that replaces the source's content"
        )

    # -- helpers and cleanup ---------------------------------------------------------------

    @pytest.fixture
    def _opened(self) -> list[Source]:
        return []

    @pytest.fixture(autouse=True)
    def _cleanup(self, _opened: list[Source]) -> Iterator[None]:
        """Close every source a test opened through ``new_source``."""
        yield
        for source in _opened:
            with contextlib.suppress(Exception):
                source.close()

    @pytest.fixture
    def new_source(self, make_source: MakeSource, _opened: list[Source]) -> MakeSource:
        """Like ``make_source``, and closed after the test."""

        def new_source(files: dict[str, str]) -> Source:
            source = make_source(dict(files))
            _opened.append(source)
            return source

        return new_source

    # -- resolve ---------------------------------------------------------------------------

    def test_resolve_is_stable_for_unchanged_content(self, new_source: MakeSource) -> None:
        source = new_source(FILES)
        first = source.resolve()
        assert isinstance(first, str) and first, f"resolve() returned {first!r}"
        assert source.resolve() == first, "resolve() changed without a content change"

    @pytest.mark.parametrize("change", ["edit", "add", "remove", "rename"])
    def test_resolve_changes_when_content_changes(
        self, new_source: MakeSource, update_source: UpdateSource, change: str
    ) -> None:
        source = new_source(FILES)
        before = source.resolve()
        update_source(source, _changed(FILES, change))
        assert source.resolve() != before, f"resolve() did not change after a file {change}"

    # -- fetch -----------------------------------------------------------------------------

    def test_fetch_holds_exactly_the_files(self, new_source: MakeSource) -> None:
        source = new_source(FILES)
        artifact = source.fetch(source.resolve())
        assert _read_tree(artifact.path) == {p: t.encode() for p, t in FILES.items()}

    def test_fetch_revision_equals_resolve(self, new_source: MakeSource) -> None:
        source = new_source(FILES)
        revision = source.resolve()
        artifact = source.fetch(revision)
        assert isinstance(artifact, Artifact), f"fetch returned {type(artifact).__name__}"
        assert artifact.revision == revision

    def test_fetch_after_update_has_the_new_content(
        self, new_source: MakeSource, update_source: UpdateSource
    ) -> None:
        source = new_source(FILES)
        source.fetch(source.resolve())
        changed = _changed(FILES, "edit")
        update_source(source, changed)
        artifact = source.fetch(source.resolve())
        assert _read_tree(artifact.path) == {p: t.encode() for p, t in changed.items()}

    def test_digest_is_sha256_and_follows_content(
        self, new_source: MakeSource, update_source: UpdateSource
    ) -> None:
        source = new_source(FILES)
        first = source.fetch(source.resolve())
        assert _DIGEST_RE.match(first.digest), f"digest {first.digest!r} is not sha256:<64 hex>"
        assert source.fetch(source.resolve()).digest == first.digest, "digest is not stable"
        update_source(source, _changed(FILES, "edit"))
        second = source.fetch(source.resolve())
        assert _DIGEST_RE.match(second.digest)
        assert second.digest != first.digest, "digest did not change with the content"

    # -- lifecycle -------------------------------------------------------------------------

    def test_url_is_a_credential_free_string(self, new_source: MakeSource) -> None:
        source = new_source(FILES)
        assert isinstance(source.url, str) and source.url
        _assert_no_credentials(source.url)
        artifact = source.fetch(source.resolve())
        _assert_no_credentials(artifact.url)

    def test_close_is_idempotent(self, new_source: MakeSource) -> None:
        source = new_source(FILES)
        source.resolve()
        source.close()
        source.close()

    def test_context_manager_returns_the_source(self, make_source: MakeSource) -> None:
        source = make_source(dict(FILES))
        with source as entered:
            assert entered is source
            assert entered.resolve()
        source.close()  # still idempotent after __exit__


def _changed(files: Mapping[str, str], change: str) -> dict[str, str]:
    changed = dict(files)
    if change == "edit":
        changed["app/deployment.yaml"] = changed["app/deployment.yaml"].replace("2", "3")
    elif change == "add":
        changed["app/new.yaml"] = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: new\n"
    elif change == "remove":
        del changed["kustomization.yaml"]
    elif change == "rename":
        changed["app/renamed.yaml"] = changed.pop("app/deployment.yaml")
    else:
        raise ValueError(f"unknown change {change!r}")
    return changed


def _read_tree(root: Path) -> dict[str, bytes]:
    assert root.is_dir(), f"artifact path {root} is not a directory"
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _assert_no_credentials(url: str) -> None:
    parts = urlsplit(url)
    assert parts.username is None and parts.password is None, f"url {url!r} carries credentials"
