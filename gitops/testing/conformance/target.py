"""The Target contract as a pytest mixin: subclass :class:`TargetConformance`, add a fixture.

::

    class TestMyTarget(TargetConformance):
        @pytest.fixture
        def target(self, tmp_path):               # required: a fresh, empty target
            return MyTarget.from_url(f"my:{tmp_path}")

        @pytest.fixture
        def reopen(self, target):                 # optional: another handle on the same state
            return lambda: MyTarget.from_url(target.url)

Covered: reading, applying, deleting, dry runs, inventories, health, hostile names and
values, ``check()``, ``own()``, ``drift_policy()``, ``lock()``, ``owners()``, ``watch()``
and the convergence law: what is applied and read back is unchanged under the target's
own drift policy, judged by the default differ. Tests that need a second handle (locks,
watches, ``live()`` without an earlier ``own()``) skip until ``reopen`` is defined; the
capability fixtures (``supports_dry_run``, ``supports_health``, ``supports_watch``,
``lock_behaviour``, ``reports_owners``) read what the target declares and may be
overridden. Objects a test applies are deleted afterwards, and namespaced objects live
in fresh ``conformance-<hex>`` namespaces, so the suite can run against a shared cluster.

This module must never rely on one backend's quirks, and never leave objects or open
handles behind.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops.differs.base import Differ
from gitops.differs.structural import StructuralDiffer
from gitops.errors import ConflictError, ManifestError, NotSupportedError
from gitops.model import DriftMode, DriftPolicy, HealthStatus, Inventory, Resource, ResourceKey
from gitops.targets.base import Target
from gitops.testing.conformance.common import (
    MIXIN_HEALTH_CHECKS,
    RBAC,
    UNICODE_TEXT,
    YAML_LOOKALIKES,
    assert_contains,
    assert_no_credentials,
    assert_unknown_option_refused,
    cluster_role,
    configmap,
    deep_copy,
    deployment,
    key_of,
    long_name,
    namespace_manifest,
    secret,
    service,
    suffix,
)

__all__ = ["LockBehaviour", "TargetConformance"]

Apply = Callable[..., Resource]
Reopen = Callable[[], Target]
#: How ``lock()`` on a second handle behaves while the first holds it.
LockBehaviour = Literal["none", "conflict", "serialize"]

#: Default seconds a conflicting ``lock()`` may take to refuse, and a watch event to arrive.
PATIENCE = 10.0

#: Convergence cases: name -> manifest builder (namespace -> manifest).
CONVERGENCE_CASES: dict[str, Callable[[str], dict[str, Any]]] = {
    "configmap": lambda ns: configmap(
        "converge-cm", ns, {"unicode": UNICODE_TEXT, "empty": "", "multi": "a\nb\n"}
    ),
    "yaml-lookalike values": lambda ns: configmap(
        "converge-lookalikes", ns, {f"v{i}": v for i, v in enumerate(YAML_LOOKALIKES)}
    ),
    "secret": lambda ns: secret("converge-secret", ns),
    "deployment": lambda ns: deployment("converge-deploy", ns),
    "service": lambda ns: service("converge-svc", ns),
    "cluster role": lambda ns: cluster_role(f"conformance:converge.{ns}"),
}

#: Update cases: the first manifest is applied, then the second, which drops or changes
#: fields; the second must then be unchanged against live.
UPDATE_CASES: dict[str, Callable[[str], tuple[dict[str, Any], dict[str, Any]]]] = {
    "configmap drops a key": lambda ns: (
        configmap("update-cm", ns, {"kept": "1", "changed": "old", "dropped": "x"}),
        configmap("update-cm", ns, {"kept": "1", "changed": "new"}),
    ),
    "deployment drops an env var and a label": lambda ns: (
        _with_label(deployment("update-deploy", ns, env={"A": "1", "B": "2"}), "tier", "web"),
        deployment("update-deploy", ns, env={"A": "1"}, replicas=3),
    ),
}


def _with_label(manifest: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    manifest["metadata"]["labels"][name] = value
    return manifest


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

    @pytest.fixture
    def reopen(self, target: Target) -> Reopen:
        """``reopen() -> Target``: a new handle on the same live state as ``target`` (as
        another process would open it). Optional: tests that need it skip without it."""
        pytest.skip(
            f"{type(self).__name__} defines no `reopen` fixture (a callable returning a new "
            "handle on the same target), needed for lock, watch and second-reader tests"
        )

    # -- capability fixtures: read what the target declares --------------------------------

    @pytest.fixture
    def supports_dry_run(self, target: Target) -> bool:
        return type(target).supports_dry_run

    @pytest.fixture
    def supports_health(self, target: Target) -> bool:
        return type(target).supports_health

    @pytest.fixture
    def supports_watch(self, target: Target) -> bool:
        return type(target).supports_watch

    @pytest.fixture
    def lock_behaviour(self, target: Target) -> LockBehaviour:
        """``none`` for the base class's no-op lock, else ``conflict`` (the documented
        default: a second sync is refused with ConflictError). Override with
        ``serialize`` for a lock that waits its turn instead."""
        return "none" if type(target).lock is Target.lock else "conflict"

    @pytest.fixture
    def reports_owners(self, target: Target) -> bool:
        """Whether ``owners()`` reports other inventories' objects (it is overridden)."""
        return type(target).owners is not Target.owners

    @pytest.fixture
    def patience(self) -> float:
        """Seconds a conflicting ``lock()`` may take to refuse and a watch event to arrive."""
        return PATIENCE

    @pytest.fixture
    def default_differ(self) -> Differ:
        """The differ that judges convergence: the engine's default."""
        return StructuralDiffer()

    # -- helpers and cleanup ---------------------------------------------------------------

    @pytest.fixture
    def _created(self) -> list[ResourceKey]:
        return []

    @pytest.fixture
    def _handles(self) -> list[Target]:
        return []

    @pytest.fixture(autouse=True)
    def _cleanup(
        self, target: Target, _created: list[ResourceKey], _handles: list[Target]
    ) -> Iterator[None]:
        """Delete what the test applied (newest first), then close every handle."""
        yield
        for key in reversed(_created):
            with contextlib.suppress(Exception):
                target.delete(key)
        for handle in _handles:
            with contextlib.suppress(Exception):
                handle.close()
        target.close()

    @pytest.fixture
    def apply(self, target: Target, _created: list[ResourceKey]) -> Apply:
        """``apply(manifest_or_resource, dry_run=False) -> Resource``, cleaned up afterwards."""

        def apply(obj: dict[str, Any] | Resource, *, dry_run: bool = False) -> Resource:
            resource = obj if isinstance(obj, Resource) else Resource.from_manifest(
                obj, origin="conformance.yaml#0"
            )
            result = target.apply(resource, dry_run=dry_run)
            if not dry_run and resource.key not in _created:
                _created.append(resource.key)
            return result

        return apply

    @pytest.fixture
    def second(self, reopen: Reopen, _handles: list[Target]) -> Target:
        """A second handle on the target, closed after the test."""
        handle = reopen()
        _handles.append(handle)
        return handle

    @pytest.fixture
    def new_namespace(self, apply: Apply) -> Callable[[], str]:
        """``new_namespace() -> name`` of a fresh Namespace applied to the target."""

        def new_namespace() -> str:
            name = f"conformance-{suffix()}"
            apply(namespace_manifest(name))
            return name

        return new_namespace

    @pytest.fixture
    def namespace(self, new_namespace: Callable[[], str]) -> str:
        return new_namespace()

    @pytest.fixture
    def inventory_name(self) -> str:
        return f"conformance-{suffix()}"

    @staticmethod
    def live_one(target: Target, key: ResourceKey) -> Resource | None:
        return target.live([key]).get(key)

    @staticmethod
    def owned(target: Target, manifest: dict[str, Any], inventory: str) -> Resource:
        """``manifest`` as ``inventory`` stores it, after recording it in that inventory
        (the engine's order: inventory first, then apply)."""
        desired = target.own(Resource.from_manifest(manifest, "conformance.yaml#0"), inventory)
        entries = dict((target.read_inventory(inventory) or Inventory({})).entries)
        entries[desired.key] = desired.api_version
        target.write_inventory(inventory, Inventory(entries, "conformance"))
        return desired

    # -- reading ---------------------------------------------------------------------------

    def test_live_of_no_keys_is_empty(self, target: Target) -> None:
        assert target.live([]) == {}, "live([]) must return {}"

    def test_live_of_absent_keys_is_empty(self, target: Target) -> None:
        absent = [
            ResourceKey("", "ConfigMap", f"absent-{suffix()}", "absent"),
            ResourceKey("", "Namespace", "", f"absent-{suffix()}"),
            ResourceKey(RBAC, "ClusterRole", "", f"absent:{suffix()}"),
            ResourceKey("conformance.example.com", f"NoSuchKind{suffix()}", "default", "x"),
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
        assert target.is_namespaced(RBAC, "ClusterRole") in (False, None)

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
        role = cluster_role(f"conformance:aggregate.to-view:{suffix()}")
        cm = configmap(f"app.example.com-{suffix()}", namespace)
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
        assert target.delete(ResourceKey("", "ConfigMap", f"absent-{suffix()}", "x")) is False
        assert target.delete(ResourceKey(RBAC, "ClusterRole", "", f"absent:{suffix()}")) is False
        unknown = ResourceKey("conformance.example.com", f"NoSuchKind{suffix()}", "default", "x")
        assert target.delete(unknown) is False, "deleting an object of an unknown kind"

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
        assert target.read_inventory(f"conformance-{suffix()}") is None

    def test_inventory_round_trips_entries_and_revision(self, target: Target) -> None:
        name = f"conformance-{suffix()}"
        entries = {
            ResourceKey("apps", "Deployment", "team-a", "web"): "apps/v1",
            ResourceKey("", "Namespace", "", "team-a"): "v1",
            ResourceKey(RBAC, "ClusterRole", "", "system:aggregate.to-view"): f"{RBAC}/v1",
            ResourceKey("", "ConfigMap", "team-a", long_name(253)): "v1",
        }
        revision = "main@sha1:" + "0123456789abcdef" * 2 + "01234567"
        target.write_inventory(name, Inventory(entries, revision))
        read = target.read_inventory(name)
        assert read is not None, "a written inventory must be readable"
        assert dict(read.entries) == entries
        assert read.revision == revision

    def test_inventory_round_trips_its_source(self, target: Target) -> None:
        name = f"conformance-{suffix()}"
        entries = {ResourceKey("", "ConfigMap", "team-a", "web"): "v1"}
        source = "git+https://git.example.com/team/app.git@main#path=apps/ünï"
        target.write_inventory(name, Inventory(entries, "r1", source))
        read = target.read_inventory(name)
        assert read is not None and dict(read.entries) == entries
        assert read.source == source, f"inventory source read back as {read.source!r}"

    def test_inventory_with_many_entries_and_empty_inventory(self, target: Target) -> None:
        name, empty = f"conformance-{suffix()}", f"conformance-{suffix()}"
        entries = {ResourceKey("", "ConfigMap", "ns", f"cm-{i}"): "v1" for i in range(1000)}
        target.write_inventory(name, Inventory(entries, "sha256:" + "a" * 64))
        target.write_inventory(empty, Inventory({}, ""))
        many, none = target.read_inventory(name), target.read_inventory(empty)
        assert many is not None and dict(many.entries) == entries
        assert none is not None, "an empty inventory is not the same as no inventory"
        assert dict(none.entries) == {} and none.revision == ""

    def test_inventory_overwrite_replaces(self, target: Target) -> None:
        name = f"conformance-{suffix()}"
        old = {ResourceKey("", "ConfigMap", "ns", "old"): "v1"}
        new = {ResourceKey("", "ConfigMap", "ns", "new"): "v1"}
        target.write_inventory(name, Inventory(old, "r1"))
        target.write_inventory(name, Inventory(new, "r2"))
        read = target.read_inventory(name)
        assert read is not None and dict(read.entries) == new and read.revision == "r2"

    def test_inventories_of_two_names_are_independent(self, target: Target) -> None:
        first, second = f"conformance-a-{suffix()}", f"conformance-b-{suffix()}"
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
        assert_no_credentials(target.url)

    def test_close_is_idempotent_and_context_manager_returns_self(self, target: Target) -> None:
        with target as entered:
            assert entered is target
        target.close()
        target.close()



    # -- check -----------------------------------------------------------------------------

    def test_check_accepts_kubernetes_kinds_and_writes_nothing(
        self, target: Target, namespace: str
    ) -> None:
        manifests = [configmap("checked", namespace), cluster_role(f"conformance:{suffix()}"),
                     namespace_manifest(f"conformance-{suffix()}")]
        resources = [Resource.from_manifest(m, f"checked.yaml#{i}") for i, m in enumerate(manifests)]
        target.check([])
        target.check(resources)
        assert target.live([r.key for r in resources]) == {}, "check() wrote objects"

    def test_check_refuses_only_with_a_manifest_error_naming_the_file(
        self, target: Target
    ) -> None:
        odd = {"apiVersion": "conformance.example.com/v1", "kind": f"NoSuchKind{suffix()}",
               "metadata": {"name": "odd", "namespace": "default"}, "spec": {"x": 1}}
        resource = Resource.from_manifest(odd, "odd/kinds.yaml#3")
        try:
            target.check([resource])
        except ManifestError as exc:
            assert exc.path == "odd/kinds.yaml", f"check() error names {exc.path!r}, not the file"
            assert "odd/kinds.yaml" in str(exc)
        assert target.live([resource.key]) == {}

    # -- own -------------------------------------------------------------------------------

    def test_own_keeps_the_key_and_never_mutates(
        self, target: Target, namespace: str, inventory_name: str
    ) -> None:
        manifest = configmap("owned", namespace)
        resource = Resource.from_manifest(manifest, "owned.yaml#0")
        before = deep_copy(manifest)
        owned = target.own(resource, inventory_name)
        assert isinstance(owned, Resource), f"own() returned {type(owned).__name__}"
        assert owned.key == resource.key and owned.api_version == resource.api_version
        assert resource.manifest == before, "own() mutated the resource it was given"
        again = target.own(owned, inventory_name)
        assert again.manifest == owned.manifest, "own() is not idempotent"

    def test_live_does_not_depend_on_an_earlier_own(
        self, target: Target, second: Target, apply: Apply, namespace: str, inventory_name: str
    ) -> None:
        desired = self.owned(target, configmap("read-by-another", namespace), inventory_name)
        apply(desired)
        live = self.live_one(second, desired.key)  # a handle that never called own()
        assert live is not None, "live() of a fresh handle misses an object it did not own()"
        assert_contains(live.manifest, {"data": desired.manifest["data"]})
        read = second.read_inventory(inventory_name)
        assert read is not None and desired.key in read.entries

    # -- drift policy and the convergence law ----------------------------------------------

    def test_drift_policy_is_a_valid_policy(self, target: Target) -> None:
        policy = target.drift_policy()
        assert isinstance(policy, DriftPolicy), f"drift_policy() returned {policy!r}"
        assert isinstance(policy.mode, DriftMode)
        if policy.mode is DriftMode.MANAGED:
            assert isinstance(policy.field_manager, str) and policy.field_manager, (
                "a MANAGED drift policy must name its field manager"
            )
        if policy.list_types is not None:
            assert callable(getattr(policy.list_types, "list_type", None))
        assert target.drift_policy() == policy, "drift_policy() is not stable"

    @pytest.mark.parametrize("case", list(CONVERGENCE_CASES))
    def test_convergence_law(
        self, target: Target, apply: Apply, namespace: str, inventory_name: str,
        default_differ: Differ, case: str,
    ) -> None:
        """Apply what ``own()`` returns, read it back: unchanged under ``drift_policy()``."""
        desired = self.owned(target, CONVERGENCE_CASES[case](namespace), inventory_name)
        apply(desired)
        self.assert_converged(target, desired, default_differ)

    @pytest.mark.parametrize("case", list(UPDATE_CASES))
    def test_convergence_law_after_an_update_that_drops_fields(
        self, target: Target, apply: Apply, namespace: str, inventory_name: str,
        default_differ: Differ, case: str,
    ) -> None:
        first, second = UPDATE_CASES[case](namespace)
        apply(self.owned(target, first, inventory_name))
        desired = self.owned(target, second, inventory_name)
        apply(desired)
        self.assert_converged(target, desired, default_differ)

    @settings(deadline=None, suppress_health_check=MIXIN_HEALTH_CHECKS)
    @given(data=st.dictionaries(
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}", fullmatch=True),
        st.text(st.characters(codec="utf-8"), max_size=40),
        max_size=6,
    ))
    def test_convergence_law_for_any_configmap_data(
        self, target: Target, apply: Apply, namespace: str, inventory_name: str,
        default_differ: Differ, data: dict[str, str],
    ) -> None:
        desired = self.owned(target, configmap("property", namespace, data), inventory_name)
        apply(desired)
        live = self.assert_converged(target, desired, default_differ)
        assert (live.manifest.get("data") or {}) == data, "data did not round-trip"

    @staticmethod
    def assert_converged(target: Target, desired: Resource, differ: Differ) -> Resource:
        """Read ``desired`` back and assert the differ finds it unchanged; return live."""
        live = target.live([desired.key]).get(desired.key)
        assert live is not None, f"{desired.key} missing after apply"
        policy = target.drift_policy()
        diff = differ.diff(desired, live, policy)
        assert not diff.changed, (
            f"{desired.key} is not converged under {policy.mode.value} after an apply:\n"
            f"{diff.text}"
        )
        return live

    # -- lock ------------------------------------------------------------------------------

    def test_lock_is_a_context_manager_released_on_exit_and_on_error(
        self, target: Target, inventory_name: str
    ) -> None:
        lock = target.lock(inventory_name)
        assert hasattr(lock, "__enter__") and hasattr(lock, "__exit__"), (
            f"lock() returned {type(lock).__name__}, not a context manager"
        )
        with lock:
            pass
        with pytest.raises(RuntimeError, match="inside the lock"), target.lock(inventory_name):
            raise RuntimeError("inside the lock")
        with target.lock(inventory_name):  # released both times: it can be taken again
            pass

    def test_lock_held_by_one_handle_conflicts_or_serializes_on_another(
        self, target: Target, second: Target, inventory_name: str, lock_behaviour: LockBehaviour,
        patience: float,
    ) -> None:
        if lock_behaviour == "none":
            pytest.skip("target declares no lock (lock() is the base class's no-op)")
        with target.lock(inventory_name):
            if lock_behaviour == "conflict":
                started = time.monotonic()
                with pytest.raises(ConflictError), second.lock(inventory_name):
                    pass
                waited = time.monotonic() - started
                assert waited < patience, f"a conflicting lock() took {waited:.1f} s to refuse"
            else:
                entered = _enter_in_thread(second, inventory_name)
                assert not entered.wait(0.5), "a second handle took a lock that is held"
        if lock_behaviour == "serialize":
            assert entered.wait(patience), "a waiting lock() was not granted after release"
        with second.lock(inventory_name):  # released: the other handle can take it now
            pass

    # -- owners ----------------------------------------------------------------------------

    def test_owners_answers_only_for_the_keys_asked(
        self, target: Target, inventory_name: str
    ) -> None:
        assert dict(target.owners([], inventory_name)) == {}
        keys = [ResourceKey("", "ConfigMap", f"absent-{suffix()}", "x")]
        answer = target.owners(keys, inventory_name)
        assert isinstance(answer, Mapping), f"owners() returned {type(answer).__name__}"
        assert set(answer) <= set(keys)

    def test_owners_names_the_inventory_that_lists_a_key(
        self, target: Target, apply: Apply, namespace: str, reports_owners: bool
    ) -> None:
        if not reports_owners:
            pytest.skip("target does not report owners (owners() is the base class's)")
        first, other = f"conformance-a-{suffix()}", f"conformance-b-{suffix()}"
        desired = self.owned(target, configmap("claimed", namespace), first)
        apply(desired)
        absent = ResourceKey("", "ConfigMap", namespace, "unclaimed")
        assert dict(target.owners([desired.key, absent], other)) == {desired.key: first}
        assert desired.key not in target.owners([desired.key], first), (
            "owners() reports an inventory as an owner to itself"
        )

    # -- watch -----------------------------------------------------------------------------

    def test_watch_without_support_is_not_supported(
        self, target: Target, supports_watch: bool
    ) -> None:
        if supports_watch:
            pytest.skip("target declares supports_watch")
        with pytest.raises(NotSupportedError):
            target.watch(lambda event: None)

    def test_watch_reports_a_change_someone_else_makes(
        self, target: Target, second: Target, apply: Apply, namespace: str,
        inventory_name: str, supports_watch: bool, patience: float,
    ) -> None:
        if not supports_watch:
            pytest.skip("target does not declare supports_watch")
        events: queue.Queue[Any] = queue.Queue()
        unsubscribe = target.watch(events.put)
        assert callable(unsubscribe), "watch() must return a function that unsubscribes"
        try:
            desired = self.owned(target, configmap("watched", namespace, {"v": "1"}), inventory_name)
            apply(desired)
            assert self.live_one(target, desired.key) is not None
            _drain(events, settle=0.3)
            second.apply(_with_data(desired, {"v": "changed by someone else"}))
            try:
                events.get(timeout=patience)
            except queue.Empty:
                pytest.fail(f"no watch event within {patience} s of a change by someone else")
        finally:
            unsubscribe()
        _drain(events, settle=0.3)
        second.apply(_with_data(desired, {"v": "changed again"}))
        time.sleep(1.0)
        assert events.empty(), "the handler was called after it unsubscribed"

    # -- options ---------------------------------------------------------------------------

    def test_an_unknown_option_is_an_invalid_url_error(self, target: Target) -> None:
        assert_unknown_option_refused(type(target), target.url)


def _with_data(resource: Resource, data: dict[str, str]) -> Resource:
    manifest = deep_copy(resource.manifest)
    manifest["data"] = data
    return Resource(resource.key, resource.api_version, manifest, resource.origin)


def _drain(events: queue.Queue[Any], *, settle: float) -> None:
    """Wait ``settle`` seconds for late events, then forget every event so far."""
    time.sleep(settle)
    while not events.empty():
        events.get_nowait()


def _enter_in_thread(target: Target, inventory: str) -> threading.Event:
    """Take ``target.lock(inventory)`` in a daemon thread; the event is set once held."""
    entered = threading.Event()

    def run() -> None:
        with target.lock(inventory):
            entered.set()

    threading.Thread(target=run, daemon=True).start()
    return entered
