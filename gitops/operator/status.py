"""What the operator knows about an application: sync, health, revisions, conditions, history.

:class:`AppStatus` is the document written where an application's status lives: the
``status`` of an ``Application`` object in a cluster (``gitops controller``), or the
target's status record for ``gitops run`` (:meth:`gitops.targets.base.Target.write_status`).
Both use the same camelCase JSON (:meth:`AppStatus.to_dict`), so ``gitops status`` and
``gitops history`` read either. Conditions follow the Kubernetes conventions
(``Ready``, ``Reconciling``, ``Stalled``; ``lastTransitionTime`` moves only when a
condition's status changes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gitops.apps.spec import Application
from gitops.errors import InputError

__all__ = [
    "HISTORY_LIMIT",
    "AppStatus",
    "Condition",
    "HealthState",
    "StatusStore",
    "SyncRecord",
    "SyncResultName",
    "SyncState",
    "Trigger",
    "merged",
    "now",
    "short_revision",
]

#: How many syncs each application remembers.
HISTORY_LIMIT = 10

SyncState = Literal["Synced", "OutOfSync", "Unknown"]
HealthState = Literal["Healthy", "Progressing", "Degraded", "Missing", "Unknown"]
SyncResultName = Literal["Succeeded", "Failed", "Interrupted"]
#: Who started a reconcile: the schedule, the start of the process, a target watch event,
#: a webhook, a person (``gitops sync``), a rollback, a reload of the files, a dependency
#: that became ready.
Trigger = Literal["start", "interval", "watch", "webhook", "manual", "rollback", "reload",
                  "dependency"]


def now() -> datetime:
    """The current time in UTC, to the second (as Kubernetes timestamps are)."""
    return datetime.now(UTC).replace(microsecond=0)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class SyncRecord(_Model):
    """One sync in an application's history."""

    revision: str
    time: datetime
    result: SyncResultName
    trigger: Trigger
    message: str = ""


class Condition(_Model):
    """A Kubernetes-style condition (``metav1.Condition``)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: datetime = Field(alias="lastTransitionTime")
    observed_generation: int = Field(default=0, alias="observedGeneration")


class AppStatus(_Model):
    """The observed state of one application (the ``status`` of an ``Application``)."""

    sync: SyncState = "Unknown"
    health: HealthState = "Unknown"
    last_applied_revision: str = Field(default="", alias="lastAppliedRevision")
    last_attempted_revision: str = Field(default="", alias="lastAttemptedRevision")
    last_sync_time: datetime | None = Field(default=None, alias="lastSyncTime")
    message: str = ""
    resources: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    conditions: tuple[Condition, ...] = ()
    history: tuple[SyncRecord, ...] = ()
    suspended: bool = False
    suspended_reason: str = Field(default="", alias="suspendedReason")
    observed_generation: int = Field(default=0, alias="observedGeneration")

    def to_dict(self) -> dict[str, Any]:
        """camelCase JSON data, times in RFC 3339 (``2026-12-07T10:00:00Z``)."""
        data: dict[str, Any] = _zulu(self.model_dump(mode="json", by_alias=True, exclude_none=True))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "status") -> AppStatus:
        """Inverse of :meth:`to_dict`; InputError naming ``where`` on a malformed document."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise InputError(f"{where}: malformed application status: {problems}") from None

    def condition(self, type_: str) -> Condition | None:
        """The condition of that type, if any."""
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def ready(self) -> bool:
        """``Ready`` is True: the last revision is applied, in sync and healthy."""
        ready = self.condition("Ready")
        return ready is not None and ready.status == "True"

    def with_record(self, record: SyncRecord) -> AppStatus:
        """This status with ``record`` appended to the history (the last 10 kept)."""
        return self.model_copy(update={"history": (*self.history, record)[-HISTORY_LIMIT:]})

    def with_conditions(self, conditions: Iterable[Condition]) -> AppStatus:
        """This status with ``conditions`` set, keeping each transition time that did not move."""
        old = {c.type: c for c in self.conditions}
        merged = []
        for c in conditions:
            before = old.get(c.type)
            if before is not None and before.status == c.status:
                c = c.model_copy(update={"last_transition_time": before.last_transition_time})
            merged.append(c)
        return self.model_copy(update={"conditions": tuple(merged)})


def short_revision(revision: str) -> str:
    """``main@sha1:0123456789ab…`` as ``main@0123456``, ``sha256:…`` as 12 hex digits."""
    ref, _, digest = revision.rpartition(":")
    if ref and len(digest) >= 12:
        name = ref.rpartition("@")[0]
        return f"{name}@{digest[:7]}" if name else digest[:12]
    return revision if len(revision) <= 24 else revision[:23] + "…"


def merged(ours: AppStatus, theirs: AppStatus) -> AppStatus:
    """``ours`` about to be written over ``theirs``, written by another process meanwhile.

    Suspension is theirs (only ``gitops suspend``/``resume``/``rollback`` set it); the
    history is the union of both, by time, the last 10 kept.
    """
    seen = {(r.time, r.revision, r.trigger, r.result) for r in ours.history}
    extra = [r for r in theirs.history if (r.time, r.revision, r.trigger, r.result) not in seen]
    history = sorted((*ours.history, *extra), key=lambda r: r.time)[-HISTORY_LIMIT:]
    return ours.model_copy(update={
        "suspended": theirs.suspended, "suspended_reason": theirs.suspended_reason,
        "history": tuple(history),
    })


def _zulu(value: Any) -> Any:
    """``+00:00`` offsets written as ``Z``, as Kubernetes writes times."""
    if isinstance(value, dict):
        return {k: _zulu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_zulu(v) for v in value]
    if isinstance(value, str) and value.endswith("+00:00") and "T" in value:
        return value[: -len("+00:00")] + "Z"
    return value


class StatusStore(Protocol):
    """Where application status lives (a cluster's ``Application`` status, a target record)."""

    def read(self, app: Application) -> AppStatus | None:
        """The stored status of ``app``, or None if none was written."""

    def write(self, app: Application, status: AppStatus) -> None:
        """Store the status of ``app`` (replacing the previous one)."""

    def update(self, app: Application,
               change: Callable[[AppStatus | None], AppStatus]) -> AppStatus:
        """Read, ``change`` and write the status of ``app`` as one step no other writer
        can come between (a lock or a compare-and-swap); returns what was written."""
