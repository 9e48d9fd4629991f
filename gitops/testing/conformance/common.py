"""Manifests, samples and assertions shared by the conformance kits.

Plugin authors may use them in their own tests too. Every builder returns a fresh
dict, so a test can change what it got without touching another test's data. Nothing
here talks to a backend.
"""

from __future__ import annotations

import base64
import copy
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from hypothesis import HealthCheck

from gitops.errors import InvalidURLError
from gitops.model import Resource, ResourceKey
from gitops.options import PluginOptions

__all__ = [
    "MIXIN_HEALTH_CHECKS",
    "RBAC",
    "SECRET_VALUES",
    "UNICODE_TEXT",
    "YAML_LOOKALIKES",
    "assert_contains",
    "assert_no_credentials",
    "assert_no_secret_values",
    "assert_unknown_option_refused",
    "cluster_role",
    "configmap",
    "deep_copy",
    "deployment",
    "key_of",
    "long_name",
    "namespace_manifest",
    "plain_yaml_files",
    "secret",
    "service",
    "suffix",
]

UNICODE_TEXT = "grüße, 日本語, ελληνικά, emoji 🚀, combining é, RTL עברית, \u2028 line sep"

#: Strings a careless YAML writer turns into something else (booleans, null, numbers,
#: dates, tags, aliases, comments): each must come back as the same string.
YAML_LOOKALIKES: tuple[str, ...] = (
    "yes", "No", "on", "OFF", "y", "null", "~", "", " ", "1e3", "0x1F", "0o17", "012",
    "1_000", ".inf", "-.nan", "2024-01-02", "2024-01-02T03:04:05Z", "12:30:00", "!tag value",
    "*alias", "&anchor", "- item", "? key", ": colon", "# hash", "a: b", "{flow}", "[list]",
    "|", ">", "'quoted'", '"double"', "`back`", "tab\tinside", "trailing space ",
    "line 1\nline 2\n", "\ttabbed\n", "back\\slash", "%directive", "@at", "---", "...",
)

#: Plaintexts a Secret sample carries: none of them (nor their base64) may ever be shown.
SECRET_VALUES: tuple[str, ...] = ("hunter2-Plaintext-Pa55", "s3cr3t-Token-Value-42")

RBAC = "rbac.authorization.k8s.io"

#: Property tests of a mixin run once per subclass (each its own executor) and reuse the
#: subclass's function-scoped fixtures across examples, on purpose: both checks are moot.
MIXIN_HEALTH_CHECKS = (HealthCheck.function_scoped_fixture, HealthCheck.differing_executors)


def suffix() -> str:
    """A short random hex string for unique names."""
    return uuid.uuid4().hex[:8]


def deep_copy(value: Any) -> Any:
    """A deep copy of a JSON-like value (to check later that nobody mutated it)."""
    return copy.deepcopy(value)


def configmap(name: str, namespace: str, data: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A ConfigMap manifest (namespaced, core group); ``namespace`` may be ``""`` (none)."""
    metadata: dict[str, Any] = {"name": name, "labels": {"app": "conformance"}}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": dict(data if data is not None else {"key": "value"}),
    }


def secret(name: str, namespace: str, values: Sequence[str] = SECRET_VALUES) -> dict[str, Any]:
    """An Opaque Secret: the first value as ``stringData``, the others base64 in ``data``."""
    first, *rest = values
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "conformance"}},
        "type": "Opaque",
        "stringData": {"password": first},
        "data": {f"token-{i}": base64.b64encode(v.encode()).decode() for i, v in enumerate(rest)},
    }


def cluster_role(name: str) -> dict[str, Any]:
    """A ClusterRole manifest (cluster-scoped, named group; its names may contain ':')."""
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    }


def namespace_manifest(name: str) -> dict[str, Any]:
    """A Namespace manifest (cluster-scoped)."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def deployment(
    name: str, namespace: str, *, env: Mapping[str, str] | None = None, replicas: int = 2
) -> dict[str, Any]:
    """A Deployment with lists (containers, ports, env) and quantities (cpu, memory)."""
    labels = {"app": name}
    container: dict[str, Any] = {
        "name": "web",
        "image": "nginx:1.27",
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [{"name": k, "value": v} for k, v in (env or {"MODE": "conformance"}).items()],
        "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                      "limits": {"cpu": "1", "memory": "128Mi"}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [container]}},
        },
    }


def service(name: str, namespace: str) -> dict[str, Any]:
    """A ClusterIP Service (a server fills in clusterIP and defaults; none of it is drift)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }


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


def plain_yaml_files(manifests: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """One YAML file per manifest (``NN-kind-name.yaml``): a tree the ``yaml`` renderer reads.

    Unicode is written as is; names are made file-safe.
    """
    files: dict[str, str] = {}
    for index, manifest in enumerate(manifests):
        kind = str(manifest.get("kind", "object")).lower()
        name = str((manifest.get("metadata") or {}).get("name", "unnamed"))
        safe = "".join(c if c.isalnum() or c in "-." else "-" for c in name)[:60]
        files[f"{index:02d}-{kind}-{safe}.yaml"] = yaml.safe_dump(
            dict(manifest), sort_keys=False, allow_unicode=True
        )
    return files


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


def assert_no_credentials(url: str) -> None:
    """Assert that ``url`` carries no userinfo."""
    parts = urlsplit(url)
    assert parts.username is None and parts.password is None, f"url {url!r} carries credentials"


def assert_no_secret_values(text: str, what: str, values: Sequence[str] = SECRET_VALUES) -> None:
    """Assert that no value of ``values`` appears in ``text``, in clear or as base64.

    The message names ``what`` was checked, never the value found.
    """
    for value in values:
        encoded = base64.b64encode(value.encode()).decode()
        assert value not in text, f"{what} shows a Secret value in clear text"
        assert encoded not in text, f"{what} shows a Secret value as base64"


def assert_unknown_option_refused(cls: Any, url: str) -> None:
    """Assert ``cls.from_url(url, <unknown option>)`` is an InvalidURLError naming the option,
    not its value; skips a plugin without an options model (transitional keywords)."""
    if cls.Options is PluginOptions:
        pytest.skip(f"{cls.__name__} declares no Options model (transitional keywords)")
    with pytest.raises(InvalidURLError) as info:
        cls.from_url(url, conformance_no_such_option="s3cret-option-value")
    message = str(info.value)
    assert "conformance_no_such_option" in message, f"the error names no option: {message}"
    assert "s3cret-option-value" not in message, "an option value was quoted in an error"
