"""What a set does to the Applications it owns when its generators change (``applicationsSync``).

Argo CD's policies, by what they allow on a generated Application:

============== ====== ====== ======
policy         create update delete
============== ====== ====== ======
sync (default) yes    yes    yes
create-update  yes    yes    no
create-only    yes    no     no
create-delete  yes    no     yes
============== ====== ====== ======

"Delete" removes the Application and, unless ``preserveResourcesOnDeletion``, prunes
its objects; an Application a policy does not let the set delete stays, with the spec
it had, and keeps being reconciled. Pure: the caller applies the decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gitops.apps.spec import Application
from gitops.appsets.spec import SyncPolicySpec

__all__ = ["Ownership", "decide"]


@dataclass(frozen=True, slots=True)
class Ownership:
    """The set's Applications after one evaluation, and those to delete."""

    #: key -> the Application the set keeps (generated now, or kept by the policy)
    keep: Mapping[str, Application]
    #: Applications no longer generated that the policy lets the set delete
    delete: tuple[Application, ...]
    #: whether deleting them prunes their objects
    prune: bool


def decide(policy: SyncPolicySpec, owned: Mapping[str, Application],
           generated: Mapping[str, Application]) -> Ownership:
    """Apply ``policy`` to the Applications ``owned`` so far and those ``generated`` now."""
    mode = policy.applications_sync
    updates = mode in ("sync", "create-update")
    deletes = mode in ("sync", "create-delete")
    keep: dict[str, Application] = {
        key: app if updates or key not in owned else owned[key]
        for key, app in generated.items()
    }
    gone = [app for key, app in sorted(owned.items()) if key not in generated]
    if not deletes:
        keep.update((app.key, app) for app in gone)
        gone = []
    return Ownership(keep, tuple(gone), prune=not policy.preserve_resources_on_deletion)
