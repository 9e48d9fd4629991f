"""The status of ``ImagePolicy`` and ``ImageUpdateAutomation`` objects, and where it is kept.

:class:`ImagePolicyStatus` (the latest image a policy chose) and
:class:`AutomationStatus` (the last run and the last commit pushed) are what the
runner (:mod:`gitops.images.automation`) writes, in the camelCase shape of a
Kubernetes status subresource. Two stores keep them:

- :class:`FileImageStatusStore` (``gitops run -f``): one JSON record per object under
  ``<cache>/image-status/<kind>/<namespace>/<name>.json`` (``$GITOPS_CACHE_DIR``, see
  :func:`gitops.cache.cache_root`), written atomically, so ``gitops status -f`` in another
  process reads what the running one found. Not next to the declaration files: those
  often live in a Git checkout (sometimes the very repository the automation pushes to),
  and a status file there would be committed or block a clean pull.
- :class:`ClusterImageStatusStore` (``gitops controller``): the status subresource of the
  objects (:mod:`gitops.images.controller`).

A status never holds a credential: messages are scrubbed before they are stored.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gitops.cache import cache_root, temp_name
from gitops.errors import InputError
from gitops.operator.status import Condition, _zulu, now
from gitops.urls import scrub

__all__ = [
    "AUTOMATION_KIND",
    "POLICY_KIND",
    "AutomationStatus",
    "FileImageStatusStore",
    "ImageKind",
    "ImagePolicyStatus",
    "ImageStatusStore",
    "ready_condition",
]

log = logging.getLogger("gitops.images")

ImageKind = Literal["ImagePolicy", "ImageUpdateAutomation"]
POLICY_KIND: Final = "ImagePolicy"
AUTOMATION_KIND: Final = "ImageUpdateAutomation"


class _Status(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    observed_generation: int = Field(default=0, alias="observedGeneration")
    message: str = ""
    conditions: tuple[Condition, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """camelCase JSON data, times in RFC 3339 with ``Z``; unset fields left out."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return dict(_zulu(data))

    @property
    def ready(self) -> bool:
        """The ``Ready`` condition is True."""
        return any(c.type == "Ready" and c.status == "True" for c in self.conditions)

    @property
    def reason(self) -> str:
        """The reason of the ``Ready`` condition ("" before the first run)."""
        return next((c.reason for c in self.conditions if c.type == "Ready"), "")

    def with_ready(self, ready: bool, reason: str, message: str, generation: int = 0) -> Any:
        """This status with ``message`` and the ``Ready`` condition set (its transition
        time kept when its status did not change)."""
        condition = ready_condition(ready, reason, message, generation)
        before = next((c for c in self.conditions if c.type == "Ready"), None)
        if before is not None and before.status == condition.status:
            condition = condition.model_copy(
                update={"last_transition_time": before.last_transition_time})
        return self.model_copy(update={"message": condition.message, "conditions": (condition,),
                                       "observed_generation": generation})


class ImagePolicyStatus(_Status):
    """What an ``ImagePolicy`` found: ``latestImage`` (``HOST/REPO:TAG``), its tag and digest."""

    latest_image: str | None = Field(default=None, alias="latestImage")
    latest_tag: str | None = Field(default=None, alias="latestTag")
    digest: str | None = None


class AutomationStatus(_Status):
    """What an ``ImageUpdateAutomation`` did: its last run and the last commit it pushed."""

    last_automation_run_time: datetime | None = Field(default=None,
                                                      alias="lastAutomationRunTime")
    last_push_commit: str | None = Field(default=None, alias="lastPushCommit")
    last_push_time: datetime | None = Field(default=None, alias="lastPushTime")


def ready_condition(ready: bool, reason: str, message: str, generation: int = 0) -> Condition:
    """A ``Ready`` condition, its message scrubbed of credentials."""
    return Condition(type="Ready", status="True" if ready else "False", reason=reason,
                     message=scrub(message), last_transition_time=now(),
                     observed_generation=generation)


def status_from(kind: ImageKind, data: Mapping[str, Any], where: str
                ) -> ImagePolicyStatus | AutomationStatus:
    """The status model of ``kind`` from stored data; InputError naming ``where``."""
    model = ImagePolicyStatus if kind == POLICY_KIND else AutomationStatus
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise InputError(f"{where}: malformed {kind} status: {problems}") from None


class ImageStatusStore(Protocol):
    """Where the status of image objects is kept (``key`` is ``namespace/name``)."""

    def read(self, kind: ImageKind, key: str) -> ImagePolicyStatus | AutomationStatus | None:
        """The stored status, or None if none was written."""

    def write(self, kind: ImageKind, key: str,
              status: ImagePolicyStatus | AutomationStatus) -> None:
        """Store the status (replacing the previous one)."""


class FileImageStatusStore:
    """Image status as JSON records under ``root`` (default ``<cache>/image-status``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else cache_root() / "image-status"

    def path(self, kind: ImageKind, key: str) -> Path:
        """Where the record of ``kind`` ``key`` lives."""
        namespace, _, name = key.partition("/")
        if not namespace or not name or "/" in name or namespace.startswith("."):
            raise InputError(f"{kind} {key!r}: not a namespace/name key")
        return self.root / kind / namespace / f"{name}.json"

    def read(self, kind: ImageKind, key: str) -> ImagePolicyStatus | AutomationStatus | None:
        path = self.path(kind, key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read the status of {kind} {key}: {exc}") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: the status of {kind} {key} is not a JSON object")
        return status_from(kind, data, str(path))

    def write(self, kind: ImageKind, key: str,
              status: ImagePolicyStatus | AutomationStatus) -> None:
        path = self.path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(temp_name(path.name))
        temp.write_text(json.dumps(status.to_dict(), indent=2, sort_keys=True) + "\n",
                        encoding="utf-8")
        os.replace(temp, path)  # atomic: a reader sees the old record or the new one

    def read_all(self, kind: ImageKind, keys: Iterable[str]
                 ) -> dict[str, ImagePolicyStatus | AutomationStatus | None]:
        """The status of each key; one that cannot be read becomes a not-Ready status
        saying why (``gitops status`` lists it instead of failing)."""
        out: dict[str, ImagePolicyStatus | AutomationStatus | None] = {}
        for key in keys:
            try:
                out[key] = self.read(kind, key)
            except InputError as exc:
                model = ImagePolicyStatus if kind == POLICY_KIND else AutomationStatus
                out[key] = model().with_ready(False, "StatusUnreadable", str(exc))
        return out

    def __repr__(self) -> str:
        return f"FileImageStatusStore({self.root})"

