"""The controller's own Kubernetes objects: Applications, their status, Events and Leases.

A thin, typed layer over :class:`gitops.targets.kubernetes.http.KubeClient` (kubeconfig,
TLS, timeouts and error translation live there). What the operator needs and nothing
else: list and watch ``Application`` objects, patch a spec, write the status
subresource, record Events the way client-go's recorder does (repeats of one event bump
its ``count``), and read and write ``coordination.k8s.io/v1`` Leases with
resourceVersion compare-and-swap for leader election. Errors are the HTTP seam's
(:class:`StatusError`, :class:`ConnectionFailed`, :class:`NoAnswer`), with three
subclasses of StatusError a caller decides on: :class:`NotFound`, :class:`Conflict`
(lost a compare-and-swap) and :class:`Expired` (410 Gone: list again). This module never
retries on its own beyond what the client does, and never logs object contents.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

from gitops.apps.spec import API_VERSION, KIND
from gitops.targets.kubernetes.errors import StatusError
from gitops.targets.kubernetes.http import KubeClient, WatchStream, load_api_client

__all__ = [
    "Conflict",
    "EventType",
    "Expired",
    "Lease",
    "NotFound",
    "OperatorAPI",
    "Watch",
    "WatchEvent",
    "format_micro_time",
    "parse_time",
]

MERGE_PATCH = "application/merge-patch+json"
LEASE_API_VERSION = "coordination.k8s.io/v1"
EVENT_MESSAGE_LIMIT = 1024  # what events.k8s.io/v1 allows in a note; status.message has it all

EventType = Literal["Normal", "Warning"]
#: ``("ADDED" | "MODIFIED" | "DELETED", the object)``
WatchEvent = tuple[str, dict[str, Any]]


class NotFound(StatusError):
    """404: the object (or its namespace) does not exist."""


class Conflict(StatusError):
    """409: a resourceVersion precondition failed, or the object already exists."""


class Expired(StatusError):
    """410 Gone: the watch's resourceVersion is older than the server keeps; list again."""


_BY_CODE: dict[int, type[StatusError]] = {404: NotFound, 409: Conflict, 410: Expired}


def _specific(error: StatusError) -> StatusError:
    """``error`` as NotFound, Conflict or Expired when its code says so, else itself."""
    cls = _BY_CODE.get(error.code)
    if cls is None or isinstance(error, cls):
        return error
    specific = cls(error.where, error.code, error.status_reason, error.message, error.details,
                   error.retry_after, url=error.url)
    specific.__cause__ = error
    return specific


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except StatusError as exc:
        specific = _specific(exc)
        if specific is exc:
            raise
        raise specific from exc


# -- times -------------------------------------------------------------------------------------


def format_micro_time(moment: datetime) -> str:
    """A Kubernetes ``MicroTime``: RFC 3339 in UTC with microseconds (``...T03:25:23.123456Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _format_time(moment: datetime) -> str:
    """A Kubernetes ``Time``: RFC 3339 in UTC, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> datetime | None:
    """A ``Time``/``MicroTime`` string as an aware datetime; None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- leases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    """A ``coordination.k8s.io/v1`` Lease as leader election reads it.

    ``holder`` is ``""`` for a released lease. ``resource_version`` is the stored
    version the next update is conditional on (``""``: not stored yet).
    """

    namespace: str
    name: str
    holder: str = ""
    duration_seconds: int | None = None
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    resource_version: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Lease:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        transitions = spec.get("leaseTransitions")
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            holder=str(spec.get("holderIdentity") or ""),
            duration_seconds=duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
            acquire_time=parse_time(spec.get("acquireTime")),
            renew_time=parse_time(spec.get("renewTime")),
            transitions=transitions if isinstance(transitions, int) and not isinstance(transitions, bool) else 0,
            resource_version=str(meta.get("resourceVersion") or ""),
            labels=dict(meta.get("labels") or {}),
        )

    def to_object(self) -> dict[str, Any]:
        """The Lease document (with ``metadata.resourceVersion`` when known)."""
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self.labels:
            meta["labels"] = dict(self.labels)
        if self.resource_version:
            meta["resourceVersion"] = self.resource_version
        spec: dict[str, Any] = {"holderIdentity": self.holder, "leaseTransitions": self.transitions}
        if self.duration_seconds is not None:
            spec["leaseDurationSeconds"] = self.duration_seconds
        if self.acquire_time is not None:
            spec["acquireTime"] = format_micro_time(self.acquire_time)
        if self.renew_time is not None:
            spec["renewTime"] = format_micro_time(self.renew_time)
        return {"apiVersion": LEASE_API_VERSION, "kind": "Lease", "metadata": meta, "spec": spec}


# -- watches -----------------------------------------------------------------------------------


class Watch:
    """One watch of Applications: iterate for ``(type, object)``; :meth:`close` from any thread.

    Iteration ends when the server ends the watch (after its timeout) or on
    :meth:`close`; reconnecting from :attr:`resource_version` is the caller's job.
    BOOKMARK events are not yielded, they only advance :attr:`resource_version`. Raises
    :class:`Expired` when the server answers 410 Gone (list again), StatusError for
    another error event, ConnectionFailed when the connection breaks.
    """

    def __init__(self, stream: WatchStream, resource_version: str, where: str, url: str) -> None:
        self._stream = stream
        #: the version of the last event seen: where a new watch resumes
        self.resource_version = resource_version
        self._where, self._url = where, url

    def __iter__(self) -> Iterator[WatchEvent]:
        for event in self._stream:
            kind = str(event.get("type") or "")
            obj = event.get("object")
            if not isinstance(obj, dict):
                continue
            if kind == "ERROR":
                code = obj.get("code")
                raise _specific(StatusError(
                    self._where, code if isinstance(code, int) else 500, str(obj.get("reason") or "Error"),
                    str(obj.get("message") or ""), obj.get("details") or {}, url=self._url,
                ))
            version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            if version:
                self.resource_version = version
            if kind == "BOOKMARK":
                continue
            obj.setdefault("apiVersion", API_VERSION)
            obj.setdefault("kind", KIND)
            yield kind, obj

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# -- events ------------------------------------------------------------------------------------


@dataclass
class _Recorded:
    name: str
    count: int


class _EventCache:
    """The events recorded lately, least recently used first, at most ``size``."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, ...], _Recorded] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> _Recorded | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple[str, ...], entry: _Recorded) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


# -- the API -----------------------------------------------------------------------------------


_APPS = f"/apis/{API_VERSION}"
_LEASES = f"/apis/{LEASE_API_VERSION}"


def _segment(text: str) -> str:
    return quote(text, safe="")


class OperatorAPI:
    """The requests the controller makes about its own objects, on one API server.

    ``client`` carries the general requests; ``lease_client`` (default: ``client``) the
    Lease requests, which should time out well within a lease's duration.
    ``event_cache`` bounds how many distinct events are remembered for aggregation.
    """

    def __init__(self, client: KubeClient, *, lease_client: KubeClient | None = None,
                 event_cache: int = 4096,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.client = client
        self.lease_client = lease_client or client
        self._events = _EventCache(event_cache)
        self._now = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None, *,
                        timeout: float = 30.0, lease_timeout: float = 4.0) -> OperatorAPI:
        """An API for ``context`` of the kubeconfig at ``path`` (None: ``$KUBECONFIG``,
        ``~/.kube/config``, or in a pod its service account).

        Lease requests time out after ``lease_timeout`` seconds and are not retried by the
        client: keep it below lease duration minus renew deadline (15 - 10 s by default),
        so a leader that lost the API server stops before its lease expires. Raises
        InvalidURLError for an unknown context, TargetError for an unusable kubeconfig.
        """
        url = f"k8s://{context}" if context else "k8s:"
        loaded = load_api_client(url, path, context)
        client = KubeClient(loaded.api_client, url=url, timeout=timeout)
        leases = KubeClient(loaded.api_client, url=url, timeout=lease_timeout,
                            connect_timeout=min(lease_timeout, 5.0),
                            unreachable_timeout=min(lease_timeout, 5.0), retries=0)
        return cls(client, lease_client=leases)

    def close(self) -> None:
        self.client.close()
        if self.lease_client is not self.client:
            self.lease_client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- applications ------------------------------------------------------------------------

    @staticmethod
    def _applications(namespace: str | None) -> str:
        if namespace is None:
            return f"{_APPS}/applications"
        return f"{_APPS}/namespaces/{_segment(namespace)}/applications"

    def _application(self, namespace: str, name: str, subresource: str = "") -> str:
        path = f"{self._applications(namespace)}/{_segment(name)}"
        return f"{path}/{subresource}" if subresource else path

    def list_applications(self, namespace: str | None = None) -> tuple[list[dict[str, Any]], str]:
        """Every Application (in ``namespace``, or all), and the list's resourceVersion to watch from."""
        with _translated():
            body = self.client.request("GET", self._applications(namespace), verb="list")
        items = [item for item in body.get("items") or [] if isinstance(item, dict)]
        for item in items:
            item.setdefault("apiVersion", API_VERSION)
            item.setdefault("kind", KIND)
        return items, str((body.get("metadata") or {}).get("resourceVersion") or "")

    def watch_applications(self, resource_version: str, *, namespace: str | None = None,
                           timeout_seconds: int = 300) -> Watch:
        """Changes to Applications after ``resource_version`` (see :class:`Watch`)."""
        path = self._applications(namespace)
        query = [("resourceVersion", resource_version), ("allowWatchBookmarks", "true")]
        with _translated():
            stream = self.client.watch(path, query, timeout_seconds)
        return Watch(stream, resource_version, f"{self.client.server}: watch {path}", self.client.url)

    def get_application(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Application object, or None when there is none."""
        try:
            with _translated():
                return dict(self.client.request("GET", self._application(namespace, name), verb="get"))
        except NotFound:
            return None

    def patch_application_spec(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch ``spec`` (``{"suspend": true}``: RFC 7386, ``None`` removes a field).

        Returns the object as stored; raises NotFound, or StatusError (422) when the
        result is invalid.
        """
        with _translated():
            return dict(self.client.request(
                "PATCH", self._application(namespace, name), body={"spec": dict(patch)},
                content_type=MERGE_PATCH, verb="patch",
            ))

    def patch_application_metadata(self, namespace: str, name: str,
                                   patch: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch ``metadata`` (annotations, labels); returns the object as stored."""
        with _translated():
            return dict(self.client.request(
                "PATCH", self._application(namespace, name), body={"metadata": dict(patch)},
                content_type=MERGE_PATCH, verb="patch",
            ))

    def write_status(self, namespace: str, name: str, status: Mapping[str, Any],
                     resource_version: str | None = None) -> dict[str, Any]:
        """Merge-patch the status subresource with ``status``; returns the stored object.

        With ``resource_version`` the write only happens if the object is still at that
        version (else :class:`Conflict`). Fields absent from ``status`` are kept: send
        ``None`` to remove one.
        """
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        with _translated():
            return dict(self.client.request(
                "PATCH", self._application(namespace, name, "status"), body=body,
                content_type=MERGE_PATCH, verb="patch status",
            ))

    # -- events ------------------------------------------------------------------------------

    def create_event(self, involved: Mapping[str, Any], type: EventType, reason: str, message: str,
                     component: str = "gitops-controller") -> dict[str, Any]:
        """Record a core/v1 Event about ``involved`` (an object with apiVersion, kind, metadata).

        An event identical to one recorded lately (same object, type, reason, message and
        component) is not created again: the existing one gets ``count + 1`` and a new
        ``lastTimestamp``, as client-go's recorder does. ``message`` is cut to 1024
        characters and must hold no secret. Returns the stored Event; raises StatusError or
        TransportError (callers treat events as best effort).
        """
        if type not in ("Normal", "Warning"):
            raise ValueError("an event's type is Normal or Warning")
        if not reason:
            raise ValueError("an event needs a reason")
        meta = involved.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        reference = {
            "apiVersion": str(involved.get("apiVersion") or ""),
            "kind": str(involved.get("kind") or ""),
            "name": str(meta.get("name") or ""),
            "namespace": str(meta.get("namespace") or ""),
            "uid": str(meta.get("uid") or ""),
            "resourceVersion": str(meta.get("resourceVersion") or ""),
        }
        if len(message) > EVENT_MESSAGE_LIMIT:
            message = message[: EVENT_MESSAGE_LIMIT - 1] + "…"
        key = (namespace, reference["apiVersion"], reference["kind"], reference["name"],
               reference["uid"], type, reason, message, component)
        now = self._now()
        collection = f"/api/v1/namespaces/{_segment(namespace)}/events"
        seen = self._events.get(key)
        if seen is not None:
            count = seen.count + 1
            try:
                with _translated():
                    event = self.client.request(
                        "PATCH", f"{collection}/{_segment(seen.name)}", content_type=MERGE_PATCH,
                        body={"count": count, "lastTimestamp": _format_time(now)}, verb="patch",
                    )
                self._events.put(key, _Recorded(seen.name, count))
                return dict(event)
            except NotFound:
                pass  # expired (events live an hour): record it anew
        name = f"{reference['name'] or 'event'}.{time.time_ns():x}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {k: v for k, v in reference.items() if v},
            "type": type,
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "reportingComponent": component,
            "firstTimestamp": _format_time(now),
            "lastTimestamp": _format_time(now),
            "count": 1,
        }
        with _translated():
            event = self.client.request("POST", collection, body=body, resend=False, verb="create")
        self._events.put(key, _Recorded(name, 1))
        return dict(event)

    # -- leases ------------------------------------------------------------------------------

    @staticmethod
    def _leases(namespace: str) -> str:
        return f"{_LEASES}/namespaces/{_segment(namespace)}/leases"

    def get_lease(self, namespace: str, name: str) -> Lease | None:
        """The Lease, or None when there is none."""
        try:
            with _translated():
                body = self.lease_client.request(
                    "GET", f"{self._leases(namespace)}/{_segment(name)}", retry=False, verb="get")
        except NotFound:
            return None
        return Lease.from_object(body)

    def list_leases(self, namespace: str, label_selector: str) -> list[Lease]:
        """The Leases of ``namespace`` that ``label_selector`` (``key=value,...``) selects."""
        with _translated():
            body = self.lease_client.request(
                "GET", self._leases(namespace), query=[("labelSelector", label_selector)],
                retry=False, verb="list")
        return [Lease.from_object(item) for item in body.get("items") or [] if isinstance(item, dict)]

    def create_lease(self, lease: Lease) -> Lease:
        """Store a new Lease; :class:`Conflict` when one of that name exists already."""
        obj = lease.to_object()
        obj["metadata"].pop("resourceVersion", None)
        with _translated():
            body = self.lease_client.request("POST", self._leases(lease.namespace), body=obj,
                                             retry=False, resend=False, verb="create")
        return Lease.from_object(body)

    def update_lease(self, lease: Lease) -> Lease:
        """Replace the Lease if it is still at ``lease.resource_version`` (else :class:`Conflict`)."""
        if not lease.resource_version:
            raise ValueError("update_lease needs the resourceVersion read with the lease")
        with _translated():
            body = self.lease_client.request(
                "PUT", f"{self._leases(lease.namespace)}/{_segment(lease.name)}", body=lease.to_object(),
                retry=False, verb="update")
        return Lease.from_object(body)

    def delete_lease(self, lease: Lease) -> None:
        """Delete the Lease if it is still at ``lease.resource_version``; gone already is fine."""
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if lease.resource_version:
            options["preconditions"] = {"resourceVersion": lease.resource_version}
        try:
            with _translated():
                self.lease_client.request(
                    "DELETE", f"{self._leases(lease.namespace)}/{_segment(lease.name)}", body=options,
                    retry=False, verb="delete")
        except NotFound:
            pass

