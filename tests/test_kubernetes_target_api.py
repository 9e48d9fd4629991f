"""The Kubernetes target's contract surface on the emulator: options through the registry,
what it describes to a plan header, ``live`` without earlier calls, and ``owners``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import gitops
from gitops import Reconciler
from gitops.errors import InvalidURLError
from gitops.model import Resource, ResourceKey

pytest.importorskip("kubernetes")
pytest.importorskip("gitops.testing.kube")

from kube_targets import suffix as _suffix

from gitops.targets.kubernetes import KubernetesOptions, KubernetesTarget
from gitops.targets.kubernetes.applyset import ApplySet
from gitops.targets.kubernetes.http import server_url
from gitops.testing.kube.kubeconfig import CONTEXT


@pytest.fixture
def kubeconfig(emulator: Any) -> str:
    return str(emulator.kubeconfig_path)


# -- options: one model, validated once --------------------------------------------------


def test_options_from_the_query_and_keywords_are_one_model(kubeconfig: str) -> None:
    with gitops.open_target("k8s:", kubeconfig=kubeconfig, timeout=5) as by_keyword:
        assert isinstance(by_keyword, KubernetesTarget)
        assert isinstance(by_keyword.options, KubernetesOptions)
        assert by_keyword.options.timeout == 5.0 and by_keyword.client.timeout == 5.0
    with gitops.open_target("k8s:?timeout=5&force=false", kubeconfig=kubeconfig) as by_query:
        assert isinstance(by_query, KubernetesTarget)
        assert (by_query.options.timeout, by_query.options.force) == (5.0, False)
        assert by_query.url == "k8s:?timeout=5&force=false"
    with gitops.open_target("k8s:?timeout=5", kubeconfig=kubeconfig, timeout=7) as both:
        assert isinstance(both, KubernetesTarget) and both.options.timeout == 7.0  # keywords win
    assert KubernetesTarget.url_options(f"k8s://{CONTEXT}?qps=3") == {"context": CONTEXT,
                                                                       "qps": "3"}


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("k8s:", {"timout": 5}, "timout"),
        ("k8s:?timout=5", {}, "unknown option 'timout'"),
        ("k8s:?timeout=soon", {}, "timeout"),
        ("k8s:", {"retries": 99}, "retries"),
        ("k8s:", {"api_client": object()}, "api_client"),  # a runtime object, not an option
    ],
)
def test_a_bad_option_names_the_url(
    kubeconfig: str, url: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidURLError, match=message) as caught:
        gitops.open_target(url, kubeconfig=kubeconfig, **options)
    assert caught.value.url.startswith("k8s:")


def test_from_options_takes_the_validated_model(kubeconfig: str) -> None:
    options = KubernetesOptions(kubeconfig=kubeconfig, qps=50)
    with KubernetesTarget.from_options("k8s:", options) as target:
        assert target.options is options
    with pytest.raises(TypeError):
        KubernetesTarget("k8s:", options=options, qps=1)


# -- what a plan header shows ------------------------------------------------------------------


def test_context_and_server_are_described_without_a_request(
    emulator: Any, open_target: Callable[..., KubernetesTarget]
) -> None:
    current = open_target()
    assert current.context == CONTEXT  # the current context, resolved
    assert current.server == emulator.url
    assert current.describe() == {"context": CONTEXT, "server": emulator.url}
    named = open_target(f"k8s://{CONTEXT}")
    assert named.context == CONTEXT and named.url == f"k8s://{CONTEXT}"
    assert sum(current.stats().values()) + sum(named.stats().values()) == 0
    embedded = KubernetesTarget(api_client=current.client.api_client)
    assert embedded.context is None
    assert embedded.describe() == {"server": emulator.url}
    embedded.close()


def test_the_server_url_never_carries_credentials() -> None:
    assert server_url("https://admin:hunter2@10.0.0.1:6443/") == "https://10.0.0.1:6443"
    assert server_url("https://k8s.example.com/prefix") == "https://k8s.example.com/prefix"


# -- live() on a fresh target ------------------------------------------------------------------


def _crd(group: str) -> dict[str, Any]:
    schema = {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget",
                           "listKind": "GadgetList"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": schema},
                              {"name": "v1beta1", "served": True, "storage": False,
                               "schema": schema}]},
    }


def test_live_on_a_fresh_target_reads_each_object_at_its_applied_version(
    open_target: Callable[..., KubernetesTarget], tmp_path: Path
) -> None:
    """Objects declared at a non-preferred version are read back at it, by a target that
    never saw ``own()``, ``read_inventory()`` or the source."""
    group, ns, name = f"{_suffix()}.example.com", f"fresh-{_suffix()}", f"f-{_suffix()}"
    old = {"apiVersion": f"{group}/v1beta1", "kind": "Gadget",
           "metadata": {"name": "old", "namespace": ns}, "spec": {"size": 1}}
    new = {"apiVersion": f"{group}/v1", "kind": "Gadget",
           "metadata": {"name": "new", "namespace": ns}, "spec": {"size": 2}}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": ns},
          "data": {"k": "v"}}
    root = tmp_path / "src"
    root.mkdir()
    (root / "all.yaml").write_text(yaml.safe_dump_all(
        [_crd(group), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
         old, new, cm]))
    with Reconciler(str(root), open_target(), name=name) as rec:
        assert rec.sync().succeeded

    fresh = open_target()
    keys = [Resource.from_manifest(m).key for m in (old, new, cm)]
    live = fresh.live(keys)
    assert {k.name: r.api_version for k, r in live.items()} == {
        "old": f"{group}/v1beta1", "new": f"{group}/v1", "cm": "v1"}
    assert live[keys[0]].manifest["spec"] == {"size": 1}
    # one LIST per kind and namespace, plus one for the other version in use
    assert fresh.stats()["list"] == 3
    with Reconciler(str(root), open_target(), name=name) as again:
        assert again.plan().in_sync  # and the engine's plan agrees, read this way


def test_live_needs_no_inventory_and_no_own(open_target: Callable[..., KubernetesTarget]) -> None:
    ns = f"fresh-{_suffix()}"
    writer = open_target(create_namespaces=True)
    made = Resource.from_manifest({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "a", "namespace": ns}, "data": {"x": "1"}})
    writer.apply(made)
    absent = ResourceKey("", "ConfigMap", ns, "absent")
    unknown = ResourceKey("example.invalid", "Nothing", ns, "x")
    live = open_target().live([made.key, absent, unknown])
    assert set(live) == {made.key} and live[made.key].manifest["data"] == {"x": "1"}


# -- owners() ------------------------------------------------------------------------------------


def test_owners_names_other_inventories_from_what_live_read(
    open_target: Callable[..., KubernetesTarget], tmp_path: Path
) -> None:
    ns, first, second = f"own-{_suffix()}", f"a-{_suffix()}", f"b-{_suffix()}"
    root = tmp_path / "src"
    root.mkdir()
    (root / "all.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "taken", "namespace": ns}},
    ]))
    owner = open_target()
    with Reconciler(str(root), owner, name=first) as rec:
        assert rec.sync().succeeded
    taken = ResourceKey("", "ConfigMap", ns, "taken")
    free = ResourceKey("", "ConfigMap", ns, "free")

    other = open_target()
    assert other.read_inventory(second) is None
    other.live([taken, free])
    before = sum(other.stats().values())
    assert other.owners([taken, free], second) == {taken: ApplySet(first, "gitops-system").id}
    assert sum(other.stats().values()) == before  # answered from the last read
    assert other.owners([taken], first) == {}  # its own inventory is no other owner

    # a target that knows the other inventory's name says it; unread keys are read
    assert owner.owners([taken], second) == {taken: first}
    lonely = open_target()
    assert lonely.owners([taken], second) == {taken: ApplySet(first, "gitops-system").id}
    assert lonely.stats()["list"] == 1
