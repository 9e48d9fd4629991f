"""The inventory in the cluster, as an ApplySet (KEP-3659) whose parent is a ConfigMap.

An inventory named ``NAME`` is the ConfigMap ``gitops-inventory-NAME`` in the
inventory namespace (``gitops-system`` by default). As the ApplySet KEP asks:

* the parent is labelled ``applyset.kubernetes.io/id=<ID>``, where ``ID`` is
  ``applyset-<base64url(sha256("NAME.NAMESPACE.ConfigMap."))>-v1`` (kubectl's formula);
* it is annotated ``applyset.kubernetes.io/tooling: gitops/v<version>``,
  ``applyset.kubernetes.io/contains-group-kinds`` (``Deployment.apps,Secret``, sorted)
  and ``applyset.kubernetes.io/additional-namespaces`` (member namespaces, sorted);
* every member the target applies is labelled ``applyset.kubernetes.io/part-of=<ID>``,
  so live reads LIST by that label and another tool sees who owns an object.

The parent's ``data`` holds what the KEP leaves to the tool and gitops needs exactly:
``revision``, ``source`` (when known) and ``entries``, one JSON array ``[group, kind,
namespace, name, apiVersion]`` per line, sorted (gzip-compressed into ``binaryData`` past
256 KiB, so 10,000 entries fit the 1 MiB object limit).

Two processes may write one parent at once; :func:`merge` is how a writer that lost a
compare-and-swap folds the winner's entries into its own, so that no object either of
them created is left out. Pure functions: no I/O.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from gitops import __version__
from gitops.errors import InputError
from gitops.model import Inventory, ResourceKey

__all__ = [
    "GROUP_KINDS_ANNOTATION",
    "ID_LABEL",
    "NAMESPACES_ANNOTATION",
    "PARENT_PREFIX",
    "PART_OF_LABEL",
    "TOOLING",
    "TOOLING_ANNOTATION",
    "ApplySet",
    "applyset_id",
    "doubtful",
    "merge",
]

PART_OF_LABEL = "applyset.kubernetes.io/part-of"
ID_LABEL = "applyset.kubernetes.io/id"
TOOLING_ANNOTATION = "applyset.kubernetes.io/tooling"
GROUP_KINDS_ANNOTATION = "applyset.kubernetes.io/contains-group-kinds"
NAMESPACES_ANNOTATION = "applyset.kubernetes.io/additional-namespaces"
TOOLING = f"gitops/v{__version__}"
PARENT_PREFIX = "gitops-inventory-"
_FORMAT = "1"
_GZIP_OVER = 256 * 1024
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@functools.lru_cache(maxsize=4096)
def applyset_id(name: str, namespace: str, kind: str = "ConfigMap", group: str = "") -> str:
    """The ApplySet ID of a parent object, computed as kubectl computes it."""
    digest = hashlib.sha256(f"{name}.{namespace}.{kind}.{group}".encode()).digest()
    return "applyset-" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=") + "-v1"


@dataclass(frozen=True, slots=True)
class ApplySet:
    """The ApplySet of one inventory: its parent ConfigMap and the members' label."""

    inventory: str
    namespace: str

    def __post_init__(self) -> None:
        name = self.name
        if not self.inventory or len(name) > 253 or not _SUBDOMAIN.match(name):
            raise InputError(
                f"inventory name {self.inventory[:80]!r} cannot name a ConfigMap "
                "(use lowercase letters, digits, '-' and '.')"
            )

    @property
    def name(self) -> str:
        """The parent ConfigMap's name."""
        return PARENT_PREFIX + self.inventory

    @property
    def id(self) -> str:
        return applyset_id(self.name, self.namespace)

    @property
    def key(self) -> ResourceKey:
        return ResourceKey("", "ConfigMap", self.namespace, self.name)

    @property
    def member_selector(self) -> str:
        """The label selector of the members."""
        return f"{PART_OF_LABEL}={self.id}"

    @property
    def parent_selector(self) -> str:
        """The label selector of the parent."""
        return f"{ID_LABEL}={self.id}"

    def parent(self, inventory: Inventory) -> dict[str, Any]:
        """The parent ConfigMap holding ``inventory``."""
        entries = sorted(inventory.entries.items())
        lines = "".join(
            json.dumps([k.group, k.kind, k.namespace, k.name, v], ensure_ascii=False) + "\n"
            for k, v in entries
        )
        data: dict[str, str] = {"format": _FORMAT, "revision": inventory.revision}
        if inventory.source:
            data["source"] = inventory.source
        binary: dict[str, str] = {}
        encoded = lines.encode()
        if len(encoded) > _GZIP_OVER:
            packed = gzip.compress(encoded, mtime=0)
            binary["entries.json.gz"] = base64.b64encode(packed).decode("ascii")
        else:
            data["entries"] = lines
        group_kinds = sorted({k.group_kind for k, _ in entries})
        namespaces = sorted({k.namespace for k, _ in entries if k.namespace} - {self.namespace})
        manifest: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {ID_LABEL: self.id, "app.kubernetes.io/managed-by": "gitops"},
                "annotations": {
                    TOOLING_ANNOTATION: TOOLING,
                    GROUP_KINDS_ANNOTATION: ",".join(group_kinds),
                    NAMESPACES_ANNOTATION: ",".join(namespaces),
                },
            },
            "data": data,
        }
        if binary:
            manifest["binaryData"] = binary
        return manifest

    def replacement(self, live: Mapping[str, Any], inventory: Inventory) -> dict[str, Any]:
        """The parent holding ``inventory``, to replace ``live`` (PUT) only if unchanged.

        Carries ``live``'s resourceVersion (the compare-and-swap) and keeps what others
        put on it: their labels and annotations, finalizers, owner references.
        """
        body = self.parent(inventory)
        have = live.get("metadata") or {}
        meta = body["metadata"]
        meta["labels"] = {**(have.get("labels") or {}), **meta["labels"]}
        meta["annotations"] = {**(have.get("annotations") or {}), **meta["annotations"]}
        for name in ("resourceVersion", "finalizers", "ownerReferences"):
            if have.get(name):
                meta[name] = have[name]
        return body

    def read(self, parent: Mapping[str, Any]) -> Inventory:
        """The inventory a parent ConfigMap holds; ValueError if it is not one of ours."""
        metadata = parent.get("metadata") or {}
        labels = metadata.get("labels") or {}
        annotations = metadata.get("annotations") or {}
        if labels.get(ID_LABEL) != self.id:
            raise ValueError(f"it is not labelled {ID_LABEL}={self.id}")
        tooling = str(annotations.get(TOOLING_ANNOTATION, ""))
        if tooling.partition("/")[0] != "gitops":
            raise ValueError(f"it belongs to another tool ({TOOLING_ANNOTATION}: {tooling!r})")
        data = parent.get("data") or {}
        binary = parent.get("binaryData") or {}
        if "entries.json.gz" in binary:
            lines = gzip.decompress(base64.b64decode(binary["entries.json.gz"])).decode()
        else:
            lines = str(data.get("entries") or "")
        entries: dict[ResourceKey, str] = {}
        for number, line in enumerate(lines.splitlines(), 1):
            item = json.loads(line)
            if not (isinstance(item, list) and len(item) == 5
                    and all(isinstance(part, str) for part in item)):
                raise ValueError(f"entry {number} is not [group, kind, namespace, name, apiVersion]")
            entries[ResourceKey(item[0], item[1], item[2], item[3])] = item[4]
        return Inventory(entries, str(data.get("revision") or ""), str(data.get("source") or ""))


def doubtful(wanted: Inventory, base: Inventory, current: Inventory) -> set[ResourceKey]:
    """Entries a writer means to drop that are still listed: were they created again?

    ``base`` is the inventory the writer planned from, ``current`` the parent as it is
    now (someone else wrote it since), ``wanted`` what the writer meant to store. An
    entry of ``base`` the writer drops (it pruned the object, or the object was gone)
    may have been re-created by the other writer meanwhile: only a read can tell.
    """
    return set((current.keys & base.keys) - wanted.keys)


def merge(
    wanted: Inventory, base: Inventory, current: Inventory, alive: Collection[ResourceKey]
) -> Inventory:
    """What a writer that lost a compare-and-swap stores instead of ``wanted``.

    Everything ``wanted`` lists, plus what another writer added since ``base`` (it may be
    creating those objects right now), plus the :func:`doubtful` entries whose objects
    exist (``alive``): no object either writer created is left out of the inventory.
    ``wanted``'s apiVersions, revision and source win.
    """
    entries = {k: v for k, v in current.entries.items() if k not in base.entries or k in alive}
    entries.update(wanted.entries)
    return Inventory(entries, wanted.revision, wanted.source)
