"""repr() and str() of the model never show a Secret's values, nor anything derived from them.

Resources, changes, plans and results end up in logs, debuggers, test failure output
and exception messages through their repr. For a Secret none of them may show a value,
its base64, its length or a hash of it, however deeply the object is nested.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from gitops.differs.structural import StructuralDiffer
from gitops.manifests import parse_documents
from gitops.masking import LAST_APPLIED_ANNOTATION, MASK
from gitops.model import (
    Action,
    Change,
    Diff,
    Outcome,
    Plan,
    Resource,
    ResourceKey,
    ResourceResult,
    SyncResult,
)

VALUES = st.text(
    alphabet=st.characters(exclude_categories=["Cs"]), min_size=4, max_size=40
).map(lambda s: f"s3cr3t{s}")


def secret(values: dict[str, str], *, kind: str = "Secret", group: str = "") -> Resource:
    """A Secret holding ``values`` in data (base64), stringData and last-applied."""
    manifest: dict[str, Any] = {
        "apiVersion": f"{group}/v1" if group else "v1",
        "kind": kind,
        "metadata": {"name": "db", "namespace": "prod"},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        "stringData": dict(values),
    }
    manifest["metadata"]["annotations"] = {LAST_APPLIED_ANNOTATION: json.dumps(manifest)}
    return Resource.from_manifest(manifest, origin="apps/db.yaml#0")


def forms(value: str) -> list[str]:
    """Every way a repr could give a value away."""
    raw = value.encode()
    b64 = base64.b64encode(raw).decode()
    digests = [hashlib.sha256(raw).hexdigest(), hashlib.md5(raw).hexdigest(),
               hashlib.sha1(raw).hexdigest()]
    return [value, repr(value)[1:-1], json.dumps(value)[1:-1], b64, b64.rstrip("="),
            *digests, *(d[:8] for d in digests), "*" * len(value), f"len={len(value)}",
            f"{len(value)} bytes", f"{len(value)} chars"]


def assert_hidden(text: str, values: dict[str, str]) -> None:
    for value in values.values():
        for form in forms(value):
            assert form not in text, (form, text)


def everything(values: dict[str, str]) -> dict[str, object]:
    """Each model type holding the Secret, as a sync of it would produce them."""
    desired = secret(values)
    live_values = {k: v + "-old" for k, v in values.items()}
    live = secret(live_values)
    diff = StructuralDiffer().diff(desired, live)
    update = Change(Action.UPDATE, desired.key, "v1", desired, live, diff)
    create = Change(Action.CREATE, desired.key, "v1", desired, None, Diff(True))
    delete = Change(Action.DELETE, desired.key, "v1", None, live)
    # a server refusing the object may quote it; a plugin bug may put it in its exception
    echoed = "; ".join(f"{k}={v} ({base64.b64encode(v.encode()).decode()})"
                       for k, v in {**values, **live_values}.items())
    failed = ResourceResult(update, Outcome.FAILED, f"rejected: {echoed}", attempts=2)
    plan = Plan("app", "dir:src", "mock:", "sha256:00", (update, create, delete),
                desired=(desired,))
    now = datetime(2025, 1, 1)
    result = SyncResult(plan, (failed, ResourceResult(create, Outcome.SUCCEEDED)), False,
                        now, now + timedelta(seconds=1))

    @dataclass
    class Holder:  # a user's own dataclass, default repr
        resources: list[Resource]
        extra: dict[str, object] = field(default_factory=dict)

    return {
        "resource": desired,
        "live": live,
        "diff": diff,
        "update": update,
        "create": create,
        "delete": delete,
        "result": failed,
        "plan": plan,
        "sync": result,
        "holder": Holder([desired, live], {"plan": plan}),
        "tuple": (desired, [live]),
        "documents": parse_documents(
            yaml.safe_dump_all([desired.manifest, live.manifest]).encode(), "db.yaml"),
    }


@given(st.dictionaries(st.sampled_from(["password", "token", "url"]), VALUES, min_size=1))
def test_no_repr_or_str_shows_a_secret_value(values: dict[str, str]) -> None:
    all_values = {**values, **{f"{k}-old": v + "-old" for k, v in values.items()}}
    for name, obj in everything(values).items():
        for text in (repr(obj), str(obj)):
            assert_hidden(text, all_values)
        assert MASK in repr(obj) or name == "diff", name
        assert not isinstance(obj, list) or "Document(" in repr(obj)


@given(VALUES, VALUES)
def test_a_repr_does_not_depend_on_the_values(one: str, other: str) -> None:
    """Nothing about a value (length, hash, first letter) changes what a repr shows."""
    shown_one = {k: repr(v) for k, v in everything({"password": one}).items()}
    shown_other = {k: repr(v) for k, v in everything({"password": other}).items()}
    assert shown_one == shown_other


def test_to_dict_of_a_result_masks_the_values_a_message_quotes() -> None:
    values = {"password": "hunter2-correct-horse"}
    sync = everything(values)["sync"]
    assert isinstance(sync, SyncResult)
    data = json.dumps(sync.to_dict())
    assert_hidden(data, values)
    assert "rejected: password=++++++++" in data


def test_a_resource_shows_key_api_version_origin_and_a_masked_manifest() -> None:
    res = secret({"password": "hunter2-correct-horse"})
    text = repr(res)
    assert text.startswith(
        "Resource(key=ResourceKey(group='', kind='Secret', namespace='prod', name='db'), "
        "api_version='v1', origin='apps/db.yaml#0', manifest={"
    )
    assert "'password': '++++++++'" in text and "'type': 'Opaque'" in text


def test_any_kind_named_secret_is_masked_whatever_its_group_or_manifest() -> None:
    values = {"password": "hunter2-correct-horse"}
    assert_hidden(repr(secret(values, group="example.com")), values)
    # a key that names a Secret masks a manifest that does not say so
    manifest = {"apiVersion": "v1", "metadata": {"name": "db"}, "data": {"p": values["password"]}}
    odd = Resource(ResourceKey("", "Secret", "", "db"), "v1", manifest)
    assert_hidden(repr(odd), values)
    # other kinds are shown as they are: nothing secret in a ConfigMap
    config = Resource.from_manifest(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}})
    assert "'data': {'k': 'v'}" in repr(config)


def test_a_diff_shows_the_paths_it_touches_never_the_values() -> None:
    diff = Diff(True, ({"op": "replace", "path": "/data/password", "value": "hunter2-correct"},
                       {"op": "add", "path": "", "value": {"stringData": {"x": "hunter2-b"}}}),
                "-a\n+b\n")
    assert repr(diff) == "Diff(changed=True, patch=[replace /data/password, add ], text=<2 lines>)"
