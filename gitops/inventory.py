"""What a reconciler owns on a target, and therefore what it may prune.

The inventory is the only license to delete: a key that is not in the reconciler's
inventory is never pruned, whatever else is on the target. The engine writes the
union of the old and new inventories *before* applying (so an interrupted sync
leaks nothing it created) and the new set after success. Pure functions: storage is
the target's job (``read_inventory``/``write_inventory``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gitops import syncoptions
from gitops.model import Inventory, Resource, ResourceKey

__all__ = [
    "EMPTY",
    "PRUNE_ANNOTATION",
    "from_resources",
    "prune_disabled",
    "same",
    "union",
    "with_entries",
]

#: ``gitops.dev/prune: disabled`` on a live object keeps it when it leaves the source; so do
#: the sync options ``Prune=false`` and ``Delete=false`` (:mod:`gitops.syncoptions`).
PRUNE_ANNOTATION = "gitops.dev/prune"

EMPTY = Inventory({}, "")


def from_resources(
    resources: Iterable[Resource], revision: str = "", source: str = ""
) -> Inventory:
    """The inventory that owns exactly ``resources``, written by ``source``."""
    return Inventory({r.key: r.api_version for r in resources}, revision, source)


def union(old: Inventory, new: Inventory) -> Inventory:
    """Everything either inventory owns (new apiVersions win); the old revision is kept,
    the new source (when it names one) wins."""
    entries: dict[ResourceKey, str] = dict(old.entries)
    entries.update(new.entries)
    return Inventory(entries, old.revision, new.source or old.source)


def with_entries(inventory: Inventory, extra: Mapping[ResourceKey, str]) -> Inventory:
    """``inventory`` plus ``extra`` entries (existing entries win)."""
    entries = dict(extra)
    entries.update(inventory.entries)
    return Inventory(entries, inventory.revision, inventory.source)


def prune_disabled(live: Resource | None) -> bool:
    """True when the live object asks not to be pruned: ``gitops.dev/prune: disabled``, or
    the sync option ``Prune=false`` or ``Delete=false``."""
    if live is None:
        return False
    return (
        str(live.annotations.get(PRUNE_ANNOTATION, "")).lower() == "disabled"
        or syncoptions.prune_disabled(live)
    )


def same(a: Inventory | None, b: Inventory) -> bool:
    """True when storing ``b`` over ``a`` would change nothing."""
    return (
        a is not None
        and a.revision == b.revision
        and a.source == b.source
        and dict(a.entries) == dict(b.entries)
    )
