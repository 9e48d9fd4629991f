"""What ``gitops status -f FILE`` shows of image automation: one row per declared object.

:func:`image_report` reads the image objects the files declare and their status
records (:class:`~gitops.images.status.FileImageStatusStore`, written by a running
``gitops run``); :class:`ImageReport` gives them as JSON rows (``imagePolicies``,
``imageUpdateAutomations``, next to ``applications``) or as two tables. Never a
credential: repository URLs are shown scrubbed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gitops.apps.load import Declarations
from gitops.images.status import (
    AUTOMATION_KIND,
    POLICY_KIND,
    AutomationStatus,
    FileImageStatusStore,
    ImagePolicyStatus,
)
from gitops.operator.cli import _one_line
from gitops.urls import scrub

__all__ = ["ImageReport", "image_report"]

Table = Callable[[Sequence[Sequence[str]]], None]


@dataclass(frozen=True)
class ImageReport:
    """The image objects of a set of files, with their status, as rows."""

    policies: tuple[dict[str, Any], ...]
    automations: tuple[dict[str, Any], ...]

    @property
    def ready(self) -> bool:
        """Every image object is Ready."""
        return all(row["ready"] for row in (*self.policies, *self.automations))

    def __bool__(self) -> bool:
        return bool(self.policies or self.automations)

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        """``{"imagePolicies": [...], "imageUpdateAutomations": [...]}``."""
        return {"imagePolicies": list(self.policies),
                "imageUpdateAutomations": list(self.automations)}

    def print_tables(self, table: Table) -> None:
        """The policies, then the automations, each as a table (skipped when empty)."""
        if self.policies:
            table([["IMAGE POLICY", "LATEST IMAGE", "READY", "MESSAGE"],
                   *([f"{r['namespace']}/{r['name']}", r["latestImage"] or "-",
                      _ready(r), _one_line(r["message"], 70)] for r in self.policies)])
        if self.automations:
            table([["IMAGE UPDATE AUTOMATION", "LAST PUSH", "LAST RUN", "READY", "MESSAGE"],
                   *([f"{r['namespace']}/{r['name']}", (r["lastPushCommit"] or "-")[:12],
                      r["lastAutomationRunTime"] or "never", _ready(r),
                      _one_line(r["message"], 70)] for r in self.automations)])


def image_report(declared: Declarations, store: FileImageStatusStore | None = None
                 ) -> ImageReport:
    """The rows of the image objects ``declared`` holds, with their stored status."""
    store = store or FileImageStatusStore()
    policies = sorted(declared.of(POLICY_KIND), key=lambda p: p.key)
    automations = sorted(declared.of(AUTOMATION_KIND), key=lambda a: a.key)
    policy_status = store.read_all(POLICY_KIND, [p.key for p in policies])
    automation_status = store.read_all(AUTOMATION_KIND, [a.key for a in automations])
    rows = []
    for policy in policies:
        status = policy_status[policy.key]
        assert status is None or isinstance(status, ImagePolicyStatus)
        status = status or ImagePolicyStatus()
        rows.append({**_common(policy, status), "image": policy.spec.image,
                     "latestImage": status.latest_image, "latestTag": status.latest_tag,
                     "digest": status.digest})
    automation_rows = []
    for automation in automations:
        done = automation_status[automation.key]
        assert done is None or isinstance(done, AutomationStatus)
        done = done or AutomationStatus()
        automation_rows.append({
            **_common(automation, done), "repository": scrub(automation.spec.git.url),
            "branch": automation.spec.git.push_branch,
            "lastPushCommit": done.last_push_commit, "lastPushTime": _time(done.last_push_time),
            "lastAutomationRunTime": _time(done.last_automation_run_time)})
    return ImageReport(tuple(rows), tuple(automation_rows))


def _common(obj: Any, status: ImagePolicyStatus | AutomationStatus) -> dict[str, Any]:
    return {"name": obj.name, "namespace": obj.namespace, "ready": status.ready,
            "reason": status.reason or "NotRunYet",
            "message": status.message or "no status yet: is gitops run running?"}


def _time(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _ready(row: dict[str, Any]) -> str:
    return "True" if row["ready"] else f"False ({row['reason']})"

