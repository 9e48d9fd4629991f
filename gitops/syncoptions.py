"""Per-resource sync options: Argo CD's ``argocd.argoproj.io/sync-options`` annotation.

Also accepted as ``gitops.dev/sync-options`` (which wins where both name an option).
The value is comma-separated ``Name=value`` pairs, whitespace trimmed. Implemented:

- ``Prune=false``: never pruned (the same as ``gitops.dev/prune: disabled``);
- ``Delete=false``: the same for the engine, whose only deletion is pruning (an
  application removed is pruned with an empty source, and these objects stay);
- ``Validate=false``: not dry-run validated by the engine before the first write.

``Prune``, ``Delete`` and ``Validate`` set to ``true`` are the defaults. Anything else
is :func:`unsupported`: the engine reports it (never silently ignores it). Pure
functions over the annotations: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from gitops.model import Resource

__all__ = [
    "SUPPORTED",
    "SYNC_OPTIONS_ANNOTATIONS",
    "prune_disabled",
    "sync_options",
    "unsupported",
    "validation_disabled",
]

#: Where options are read, the lowest priority first.
SYNC_OPTIONS_ANNOTATIONS = ("argocd.argoproj.io/sync-options", "gitops.dev/sync-options")

#: Options the engine implements, with the values it accepts.
SUPPORTED: Mapping[str, frozenset[str]] = {
    "Prune": frozenset({"true", "false"}),
    "Delete": frozenset({"true", "false"}),
    "Validate": frozenset({"true", "false"}),
}


def _entries(annotations: Mapping[str, str]) -> list[str]:
    entries: list[str] = []
    for annotation in SYNC_OPTIONS_ANNOTATIONS:
        value = annotations.get(annotation)
        if value:
            entries += [part.strip() for part in str(value).split(",") if part.strip()]
    return entries


def sync_options(resource: Resource) -> dict[str, str]:
    """The options a resource declares: name -> value (``gitops.dev/`` wins over Argo CD's).

    An entry without ``=`` maps to ``""``.
    """
    options: dict[str, str] = {}
    for entry in _entries(resource.annotations):
        name, _, value = entry.partition("=")
        options[name.strip()] = value.strip()
    return options


def _is_false(resource: Resource, option: str) -> bool:
    if not resource.annotations:
        return False
    return sync_options(resource).get(option, "").lower() == "false"


def prune_disabled(resource: Resource) -> bool:
    """``Prune=false`` or ``Delete=false``: the engine never deletes the object."""
    return _is_false(resource, "Prune") or _is_false(resource, "Delete")


def validation_disabled(resource: Resource) -> bool:
    """``Validate=false``: the engine does not dry-run the object before the first write."""
    return _is_false(resource, "Validate")


def unsupported(resource: Resource) -> list[str]:
    """The entries the engine does not implement (``Replace=true``, ``Prune=confirm``), as
    written, in order."""
    if not resource.annotations:
        return []
    found: list[str] = []
    for entry in _entries(resource.annotations):
        name, _, value = entry.partition("=")
        if value.strip().lower() not in SUPPORTED.get(name.strip(), frozenset()):
            found.append(entry)
    return found
