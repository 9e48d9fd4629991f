"""The engine's laws, as hypothesis properties over random manifest sets and drift.

1. sync converges: the target then holds exactly what the source declares (server-owned
   fields aside: fields removed from the source, or added by hand, are gone), and a plan
   right after it is empty;
2. a second sync is a no-op: no apply, delete or inventory write;
3. prune never deletes what the inventory does not own;
4. any invalid input file leaves the target byte-for-byte unchanged;
5. plans are deterministic.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from gitops import Action, Reconciler, ResourceKey
from gitops.differs.normalize import strip_ignored
from gitops.errors import ManifestError
from gitops.sources.directory import DirectorySource
from gitops.targets.filetree import FileTreeTarget
from gitops.testing import MemoryTarget

NAMES = st.sampled_from(["a", "b", "c", "web", "db", "x.y", "sys:ro"])
NAMESPACES = st.sampled_from(["team-a", "team-b"])
VALUES = st.text(alphabet="abc01 :-", max_size=6)


@st.composite
def manifest(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["ConfigMap", "Deployment", "Namespace", "ClusterRole", "Secret"]))
    name = draw(NAMES)
    if kind == "Namespace":
        return {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name.replace(".", "-").replace(":", "-")}}
    if kind == "ClusterRole":
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": name},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    meta = {"name": name, "namespace": draw(NAMESPACES)}
    if kind == "Deployment":
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                "spec": {"replicas": draw(st.integers(0, 3)),
                         "template": {"spec": {"containers": [
                             {"name": "c", "image": draw(st.sampled_from(["n:1", "n:2"])),
                              "resources": {"limits": {"cpu": draw(
                                  st.sampled_from(["500m", "1", "250m"]))}}}]}}}}
    if kind == "Secret":
        return {"apiVersion": "v1", "kind": "Secret", "metadata": meta,
                "stringData": {"password": draw(VALUES)}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
            "data": draw(st.dictionaries(st.sampled_from(["k1", "k2", "k3"]), VALUES, max_size=3))}


def key_of(m: dict[str, Any]) -> tuple[str, str, str, str]:
    return (m["apiVersion"], m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"])


manifest_sets = st.lists(manifest(), max_size=12, unique_by=key_of)


def write_source(root: Path, manifests: list[dict[str, Any]], files: int) -> None:
    for old in root.glob("*.yaml"):
        old.unlink()
    buckets: list[list[dict[str, Any]]] = [[] for _ in range(files)]
    for i, m in enumerate(manifests):
        buckets[i % files].append(m)
    for i, docs in enumerate(buckets):
        if docs:
            (root / f"part-{i}.yaml").write_text(yaml.safe_dump_all(docs))


drift_ops = st.lists(
    st.tuples(st.sampled_from(["mutate", "delete", "extra-field", "foreign"]),
              st.integers(0, 50), VALUES),
    max_size=5,
)


def drift(target: MemoryTarget, ops: list[tuple[str, int, str]]) -> set[ResourceKey]:
    """Change the target behind the reconciler's back; return the keys of foreign objects."""
    foreign: set[ResourceKey] = set()
    for op, index, value in ops:
        objects = sorted(target.objects())
        if op == "foreign":
            foreign.add(target.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                "name": f"foreign-{index}", "namespace": "team-a"}, "data": {"v": value}}).key)
            continue
        if not objects:
            continue
        key = objects[index % len(objects)]
        if key in foreign:
            continue
        if op == "delete":
            target.delete(key)
        elif op == "mutate":
            target.mutate(key, functools.partial(_mutate, value=value))
        else:
            target.mutate(key, functools.partial(_annotate, value=value))
    return foreign


def _mutate(obj: dict[str, Any], *, value: str) -> None:
    """Drift in a field the source declares (or, for a Namespace, a label)."""
    if obj["kind"] == "Namespace":
        obj.setdefault("metadata", {}).setdefault("labels", {}).update(drift=value or "x")
    elif obj["kind"] == "ClusterRole":
        obj.update(drifted={"v": value})
    else:
        obj.setdefault("data", {}).update(k1=value + "!")


def _annotate(obj: dict[str, Any], *, value: str) -> None:
    """An annotation someone else adds."""
    obj["metadata"].setdefault("annotations", {}).update({"someone.else/note": value})


@given(states=st.lists(st.tuples(manifest_sets, st.integers(1, 3), drift_ops),
                       min_size=1, max_size=3),
       prune=st.booleans())
def test_sync_converges_is_idempotent_and_prunes_only_owned(
    states: list[tuple[list[dict[str, Any]], int, list[tuple[str, int, str]]]], prune: bool
) -> None:
    target = MemoryTarget()
    foreign: set[ResourceKey] = set()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for manifests, files, ops in states:
            write_source(root, manifests, files)
            foreign |= drift(target, ops)
            foreign &= set(target.objects())
            reconciler = Reconciler(DirectorySource(root), target, prune=prune,
                                    allow_empty=True)
            plan = reconciler.plan()
            again = Reconciler(DirectorySource(root), target, prune=prune,
                               allow_empty=True).plan()
            assert plan.changes == again.changes, "plans must be deterministic"

            owned = plan.inventory.keys if plan.inventory is not None else frozenset()
            deletes = {c.key for c in plan.changes if c.action is Action.DELETE}
            assert deletes <= owned, "prune may only delete what the inventory owns"
            assert not deletes & foreign

            result = reconciler.sync(plan)
            assert result.succeeded, [r.message for r in result.failed]
            stored = target.objects()
            assert foreign <= set(stored), "a foreign object was deleted"
            for res in plan.desired:  # what convergence means: exactly desired, no more
                assert strip_ignored(stored[res.key]) == strip_ignored(res.manifest), res.key
            assert reconciler.plan().in_sync, "sync must converge"

            target.reset_calls()
            second = reconciler.sync()
            assert second.results == ()
            counts = target.counts()
            assert counts["apply"] == counts["delete"] == counts["write_inventory"] == 0


INVALID_DOCS = st.sampled_from([
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: team-a}\n",   # no name
    "apiVersion: v1\nmetadata: {name: x}\n",                              # no kind
    "kind: ConfigMap\nmetadata: {name: x}\n",                             # no apiVersion
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: Bad_NS}\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 'a/b'}\n",
    "- just\n- a list\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [unclosed\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: team-a}\n---\n"
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: team-a}\n",  # duplicate
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
    "metadata:\n  annotations: {gitops.dev/sync-wave: soon}\n",             # duplicate key / bad
])


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@given(before=manifest_sets, after=manifest_sets, invalid=INVALID_DOCS, prune=st.booleans())
def test_invalid_input_leaves_the_target_byte_for_byte_unchanged(
    before: list[dict[str, Any]], after: list[dict[str, Any]], invalid: str, prune: bool
) -> None:
    with tempfile.TemporaryDirectory() as src_dir, tempfile.TemporaryDirectory() as out_dir:
        src, out = Path(src_dir), Path(out_dir)
        write_source(src, before, 2)
        target = FileTreeTarget(out)
        assert Reconciler(DirectorySource(src), target, prune=prune,
                          allow_empty=True).sync().succeeded
        (out / "README.md").write_text("a file the reconciler does not own\n")
        expected = snapshot(out)
        write_source(src, after, 2)
        (src / "zz-invalid.yaml").write_text(invalid)
        try:
            Reconciler(DirectorySource(src), target, prune=prune, allow_empty=True).sync()
        except ManifestError as exc:
            assert "zz-invalid.yaml" in str(exc)
        else:
            raise AssertionError(f"invalid document was accepted: {invalid!r}")
        assert snapshot(out) == expected
