"""Deleting an application: prune every object it owns, then drop its records.

An application removed from the operator (:meth:`Operator.remove`) only stops being
reconciled; its objects stay. :func:`delete_application` is the explicit way to take
them away: a sync through the engine, under the application's inventory name, of a
source that declares nothing, with ``prune`` and ``allow_empty``. So the inventory is
honoured exactly as for any prune (objects annotated ``Prune=false`` or listed by another
inventory stay; hooks do not run), the target's lock is held, and only when every owned
object is gone are the inventory and the operator's status record deleted
(:meth:`~gitops.targets.base.Target.forget`). It must never delete what the
application's inventory does not list.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gitops.apps.spec import Application
from gitops.engine import Reconciler
from gitops.model import Artifact, Event, Outcome, RenderContext, Resource
from gitops.plugins import open_target
from gitops.renderers.base import Renderer
from gitops.sources.base import Source

__all__ = ["DELETED_REVISION", "DeletionResult", "delete_application"]

log = logging.getLogger("gitops.operator")

#: The revision a deletion is recorded at (in the events and the engine's plan).
DELETED_REVISION = "deleted"


@dataclass(frozen=True, slots=True)
class DeletionResult:
    """What deleting one application did."""

    app: str
    #: objects deleted
    deleted: int
    #: objects kept: ``Prune=false``, or another inventory lists them
    kept: int
    #: objects whose deletion failed (the records are then kept, to try again)
    failed: int
    #: the inventory and status record were deleted
    forgotten: bool
    message: str

    @property
    def succeeded(self) -> bool:
        """Every owned object was deleted or deliberately kept."""
        return self.failed == 0


class _NothingSource(Source):
    """A source that declares nothing, under the identity the inventory already has."""

    def __init__(self, url: str, identity: str) -> None:
        self.url = url
        self._identity = identity

    def identity(self) -> str:
        return self._identity

    def resolve(self) -> str:
        return DELETED_REVISION

    def fetch(self, revision: str) -> Artifact:
        digest = "sha256:" + hashlib.sha256(b"").hexdigest()
        return Artifact(url=self.url, revision=revision, digest=digest, path=Path("/"))


class _NothingRenderer(Renderer):
    name = "nothing"

    def render(self, root: Path, context: RenderContext) -> list[Resource]:
        return []


def delete_application(app: Application, *,
                       on_event: Callable[[Event], None] | None = None) -> DeletionResult:
    """Prune every object ``app``'s inventory owns on its target, then forget the inventory
    and its status record. Raises the engine's errors when the target cannot be read or
    locked (nothing was deleted then); a failed deletion of some objects is in the result.
    """
    target = open_target(app.spec.target.url, **app.target_options)
    try:
        name = app.inventory_name
        current = target.read_inventory(name)
        if current is None or not current.keys:
            forgotten = target.forget(name)
            return DeletionResult(app.key, 0, 0, 0, forgotten, "nothing to delete")
        engine = Reconciler(
            _NothingSource(app.spec.source.url, current.source or app.spec.source.url), target,
            name=name, prune=True, allow_empty=True,
            renderer=_NothingRenderer(), on_event=on_event,
        )
        result = engine.sync()
        plan = result.plan
        deleted = sum(r.outcome is Outcome.SUCCEEDED and r.hook is None for r in result.results)
        failed = sum(r.outcome is Outcome.FAILED and r.hook is None for r in result.results)
        kept = len(plan.orphaned)
        forgotten = False
        if failed == 0:  # kept objects left the inventory: it owns nothing now
            forgotten = target.forget(name)
        message = f"deleted {deleted} objects" + (f", kept {kept}" if kept else "") + (
            f", {failed} could not be deleted" if failed else "")
        return DeletionResult(app.key, deleted, kept, failed, forgotten, message)
    finally:
        target.close()
