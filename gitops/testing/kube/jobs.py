"""A stand-in Job controller: a created Job runs for a moment, then completes or fails.

Right after a Job is written (and not suspended) it is started, through the status
subresource by ``kube-controller-manager`` as a real cluster does: ``startTime``,
``active``. After its duration it finishes with the status Kubernetes 1.32 writes:

- success: ``succeeded`` (= ``completions``), ``completionTime``, conditions
  ``SuccessCriteriaMet`` and ``Complete`` (reason ``CompletionsReached``);
- failure: ``failed`` (= ``backoffLimit`` + 1 pod failures), conditions ``FailureTarget``
  and ``Failed`` (reason ``BackoffLimitExceeded``), no ``completionTime``.

Annotations on the Job choose: ``emulator.gitops.dev/job-duration`` (seconds, default 0.2)
and ``emulator.gitops.dev/job-result`` (``Succeeded``, the default, or ``Failed``);
``kube-emulator.gitops.dev/rollout: progressing`` keeps a Job running forever (``failed``
fails it). An invalid value is refused with a 422 when the Job is written.

One scheduler thread (started with the first Job, stopped with the emulator) ends the Jobs
when they are due; nothing busy-waits and no thread is spent per Job. Watches see the
start and the end as MODIFIED events.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from typing import TYPE_CHECKING, Any

from gitops.testing.kube.controllers import MANAGER, ROLLOUT_ANNOTATION
from gitops.testing.kube.options import now
from gitops.testing.kube.status import StatusError

if TYPE_CHECKING:
    from gitops.testing.kube.api import Api
    from gitops.testing.kube.discovery import ResourceType
    from gitops.testing.kube.store import ObjectKey

__all__ = [
    "DEFAULT_JOB_DURATION",
    "JOB_DURATION_ANNOTATION",
    "JOB_RESULT_ANNOTATION",
    "JobController",
    "job_annotation_causes",
]

JOB_DURATION_ANNOTATION = "emulator.gitops.dev/job-duration"
JOB_RESULT_ANNOTATION = "emulator.gitops.dev/job-result"
DEFAULT_JOB_DURATION = 0.2
_RESULTS = ("Succeeded", "Failed")

log = logging.getLogger(__name__)


def _duration(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def job_annotation_causes(meta: dict[str, Any]) -> list[tuple[str, str, str]]:
    """422 causes for values of the emulator's Job annotations it cannot act on."""
    annotations = meta.get("annotations") or {}
    causes = []
    if JOB_DURATION_ANNOTATION in annotations and _duration(annotations[JOB_DURATION_ANNOTATION]) is None:
        causes.append(("FieldValueInvalid", f"metadata.annotations[{JOB_DURATION_ANNOTATION}]",
                       f'Invalid value: "{annotations[JOB_DURATION_ANNOTATION]}": the Kubernetes emulator needs a number of seconds >= 0'))
    if JOB_RESULT_ANNOTATION in annotations and annotations[JOB_RESULT_ANNOTATION] not in _RESULTS:
        causes.append(("FieldValueNotSupported", f"metadata.annotations[{JOB_RESULT_ANNOTATION}]",
                       f'Unsupported value: "{annotations[JOB_RESULT_ANNOTATION]}": supported values: "Succeeded", "Failed"'))
    return causes


def _finished(status: dict[str, Any]) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in status.get("conditions") or [] if isinstance(c, dict))


def _condition(kind: str, reason: str, message: str, stamp: str) -> dict[str, Any]:
    return {"type": kind, "status": "True", "lastProbeTime": stamp, "lastTransitionTime": stamp,
            "reason": reason, "message": message}


def _count(spec: dict[str, Any], key: str, default: int) -> int:
    value = spec.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def running_status(spec: dict[str, Any], stamp: str) -> dict[str, Any]:
    """The status of a started Job (one pod per ``parallelism``, none ready)."""
    active = max(1, min(_count(spec, "parallelism", 1), _count(spec, "completions", 1) or 1))
    return {"startTime": stamp, "active": active, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}}


def final_status(spec: dict[str, Any], started: str, stamp: str, *, failed: bool) -> dict[str, Any]:
    """The status of a Job that finished at ``stamp``, as the 1.32 Job controller writes it."""
    if failed:
        message = "Job has reached the specified backoff limit"
        return {"conditions": [_condition("FailureTarget", "BackoffLimitExceeded", message, stamp),
                               _condition("Failed", "BackoffLimitExceeded", message, stamp)],
                "failed": _count(spec, "backoffLimit", 6) + 1, "ready": 0, "startTime": started, "terminating": 0,
                "uncountedTerminatedPods": {}}
    message = "Reached expected number of succeeded pods"
    return {"completionTime": stamp,
            "conditions": [_condition("SuccessCriteriaMet", "CompletionsReached", message, stamp),
                           _condition("Complete", "CompletionsReached", message, stamp)],
            "ready": 0, "startTime": started, "succeeded": _count(spec, "completions", 1) or 1, "terminating": 0,
            "uncountedTerminatedPods": {}}


class JobController:
    """Starts Jobs as they are written and ends them on time, from one scheduler thread."""

    def __init__(self, api: Api) -> None:
        self._api = api
        self._changed = threading.Condition()
        self._due: list[tuple[float, int, ObjectKey, str]] = []  # heap of (when, tie-break, key, uid)
        self._tie = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def observe(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        """After a write of a Job (under the API's write lock): start it and schedule its end."""
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        if meta.get("deletionTimestamp") or spec.get("suspend") is True or status.get("startTime") or _finished(status):
            return
        self._api._update(rtype, rtype.versions[0], obj, {**obj, "status": running_status(spec, now())}, MANAGER,
                          False, subresource="status")
        annotations = meta.get("annotations") or {}
        if annotations.get(ROLLOUT_ANNOTATION) == "progressing":
            return  # runs forever
        duration = _duration(annotations.get(JOB_DURATION_ANNOTATION, DEFAULT_JOB_DURATION))
        key: ObjectKey = (rtype.group, rtype.plural, meta.get("namespace", ""), meta["name"])
        with self._changed:
            if self._stopped:
                return
            heapq.heappush(self._due, (time.monotonic() + (duration or 0.0), next(self._tie), key, str(meta.get("uid"))))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"kube-emulator:jobs:{id(self):x}", daemon=True)
                self._thread.start()
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopped and (not self._due or self._due[0][0] > time.monotonic()):
                    self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._stopped:
                    return
                _, _, key, uid = heapq.heappop(self._due)
            try:
                self._finish(key, uid)
            except StatusError as exc:  # e.g. a namespace going away meanwhile: the Job is simply not ended
                log.debug("emulated Job %s/%s not finished: %s", key[2], key[3], exc.message)
            except Exception:  # never let one Job stop the controller
                log.exception("emulated Job controller failed on %s/%s", key[2], key[3])

    def _finish(self, key: ObjectKey, uid: str) -> None:
        api = self._api
        rtype = api.discovery.lookup(key[0], "v1", key[1])
        if rtype is None:
            return
        with api._write_lock:
            obj = api.store.get(*key)
            if obj is None or obj["metadata"].get("uid") != uid or obj["metadata"].get("deletionTimestamp"):
                return
            status = obj.get("status") or {}
            if _finished(status) or not status.get("startTime"):
                return
            annotations = obj["metadata"].get("annotations") or {}
            failed = (annotations.get(JOB_RESULT_ANNOTATION) == "Failed" or annotations.get(ROLLOUT_ANNOTATION) == "failed")
            final = final_status(obj.get("spec") or {}, status["startTime"], now(), failed=failed)
            api._update(rtype, rtype.versions[0], obj, {**obj, "status": final}, MANAGER, False, subresource="status")

    def pending(self) -> int:
        """Jobs started and not yet due to end (for tests and debugging)."""
        with self._changed:
            return len(self._due)

    def stop(self, timeout: float = 5) -> None:
        """Stop the scheduler thread; Jobs still running stay running. Idempotent."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
