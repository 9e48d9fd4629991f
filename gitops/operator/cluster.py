"""Applications as objects in a cluster: ``gitops controller`` and ``--kubeconfig`` commands.

:class:`ClusterStatusStore` keeps status in each ``Application``'s status subresource,
answering reads from the objects the controller watches (no request in a steady
state). :class:`Controller` lists and watches ``applications.gitops.dev`` and feeds
the scheduler (:class:`~gitops.operator.scheduler.Operator`); an object that is not a
valid Application gets a ``Stalled`` status and a Warning event naming each problem.
Status changes become Kubernetes Events on the Application. :class:`ClusterCatalog`
gives the same objects to ``gitops status/history/sync/rollback/suspend/resume
--kubeconfig``.

A ``k8s:`` target without a context or kubeconfig of its own means the cluster the
controller talks to: the controller's kubeconfig and context are passed down to it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from gitops.apps.spec import Application
from gitops.errors import GitopsError, InputError
from gitops.operator.kubeapi import Conflict, Expired, OperatorAPI
from gitops.operator.status import AppStatus, Condition, now
from gitops.operator.webhooks import PushEvent, pushed_to
from gitops.targets.kubernetes.errors import StatusError, TransportError

__all__ = [
    "REQUESTED_AT", "ClusterCatalog", "ClusterStatusStore", "Controller", "cluster_status",
    "status_in", "with_cluster_defaults",
]

log = logging.getLogger("gitops.operator")

_CAS_ATTEMPTS = 5

#: Set by a replica that received a webhook for an application another replica reconciles.
REQUESTED_AT = "gitops.dev/requested-at"

_EVENT_TYPES = {"SyncSucceeded": "Normal", "SyncFailed": "Warning", "DriftDetected": "Warning",
                "HealthDegraded": "Warning"}


def with_cluster_defaults(app: Application, kubeconfig: str | None,
                          context: str | None) -> Application:
    """``app`` with a bare ``k8s:`` target pointed at the controller's own cluster."""
    url = app.spec.target.url
    if not url.startswith("k8s:") or url.startswith("k8s://") or "?" in url:
        return app
    options = dict(app.spec.target.options)
    if kubeconfig is not None:
        options.setdefault("kubeconfig", kubeconfig)
    if context is not None:
        options.setdefault("context", context)
    if options == app.spec.target.options:
        return app
    target = app.spec.target.model_copy(update={"options": options})
    return app.model_copy(update={"spec": app.spec.model_copy(update={"target": target})})


def status_in(obj: Mapping[str, Any] | None, key: str) -> AppStatus | None:
    """The status an ``Application`` object holds (None when it has none yet)."""
    status = obj.get("status") if obj is not None else None
    if not isinstance(status, dict) or not status:
        return None
    return AppStatus.from_dict(status, where=f"Application {key}")


def cluster_status(status: AppStatus) -> dict[str, Any]:
    """``status`` as an Application's status subresource holds it (suspension is
    ``spec.suspend`` in a cluster, so those two fields are left out)."""
    data = status.to_dict()
    data.pop("suspended", None)
    data.pop("suspendedReason", None)
    return data


class ClusterStatusStore:
    """Application status in the status subresource of each ``Application`` object."""

    def __init__(self, api: OperatorAPI) -> None:
        self._api = api
        self._objects: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def seen(self, obj: Mapping[str, Any]) -> None:
        """Remember the latest version of an object (from a list or watch)."""
        meta = obj.get("metadata") or {}
        with self._lock:
            self._objects[f"{meta.get('namespace')}/{meta.get('name')}"] = dict(obj)

    def forget(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def object(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._objects.get(key)

    def objects(self) -> dict[str, dict[str, Any]]:
        """Every object seen and not forgotten, by key (a snapshot)."""
        with self._lock:
            return dict(self._objects)

    def read(self, app: Application) -> AppStatus | None:
        obj = self.object(app.key)
        if obj is None:
            obj = self._api.get_application(app.namespace, app.name)
            if obj is None:
                return None
            self.seen(obj)
        return status_in(obj, app.key)

    def update(self, app: Application,
               change: Callable[[AppStatus | None], AppStatus]) -> AppStatus:
        """Read the object from the server, change its status and write it back on the
        condition that nobody wrote in between (its resourceVersion); again on a conflict."""
        for _ in range(_CAS_ATTEMPTS):
            obj = self._api.get_application(app.namespace, app.name)
            if obj is None:
                return change(None)  # deleted meanwhile: nothing to record it on
            status = change(status_in(obj, app.key))
            version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            try:
                self._write(app, status, version or None)
            except Conflict:
                continue
            return status
        raise InputError(f"Application {app.key}: its status changed {_CAS_ATTEMPTS} times "
                         "while being written; giving up this time")

    def write(self, app: Application, status: AppStatus) -> None:
        self._write(app, status, None)

    def _write(self, app: Application, status: AppStatus, version: str | None) -> None:
        try:
            stored = self._api.write_status(app.namespace, app.name, cluster_status(status),
                                            version)
        except Conflict:
            raise
        except StatusError as exc:
            if exc.code == 404:  # deleted meanwhile: nothing to record it on
                return
            raise InputError(f"Application {app.key}: cannot write its status: {exc}") from exc
        self.seen(stored)


class ClusterCatalog:
    """The ``Application`` objects of a cluster, for the ``--kubeconfig`` commands."""

    def __init__(self, api: OperatorAPI, kubeconfig: str | None = None,
                 context: str | None = None) -> None:
        self._api = api
        self._store = ClusterStatusStore(api)
        self._kubeconfig, self._context = kubeconfig, context
        self._invalid: list[tuple[str, str]] = []

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None, context: str | None) -> ClusterCatalog:
        return cls(OperatorAPI.from_kubeconfig(kubeconfig, context), kubeconfig, context)

    @property
    def store(self) -> ClusterStatusStore:
        return self._store

    def applications(self) -> list[Application]:
        objects, _ = self._api.list_applications()
        apps = []
        self._invalid = []
        for obj in objects:
            self._store.seen(obj)
            try:
                apps.append(with_cluster_defaults(Application.from_object(obj), self._kubeconfig,
                                                  self._context))
            except InputError as exc:
                meta = obj.get("metadata") or {}
                self._invalid.append((f"{meta.get('namespace')}/{meta.get('name')}", str(exc)))
        return apps

    def invalid(self) -> list[tuple[str, str]]:
        """``(namespace/name, problem)`` of each object :meth:`applications` could not read."""
        return list(self._invalid)

    def suspend(self, app: Application, suspended: bool, reason: str) -> None:
        self._api.patch_application_spec(app.namespace, app.name, {"suspend": suspended})
        if reason:
            obj = self._store.object(app.key) or {"apiVersion": app.api_version,
                                                  "kind": app.kind,
                                                  "metadata": {"name": app.name,
                                                               "namespace": app.namespace}}
            _event(self._api, obj, "Normal", "Suspended" if suspended else "Resumed", reason)

    def close(self) -> None:
        self._api.close()


def _event(api: OperatorAPI, obj: Mapping[str, Any], type_: str, reason: str,
           message: str) -> None:
    try:
        api.create_event(obj, type_, reason, message)  # type: ignore[arg-type]
    except (StatusError, TransportError, GitopsError) as exc:  # events are best effort
        log.debug("event %s not recorded: %s", reason, exc)


class Controller:
    """Watches ``Application`` objects and keeps those it is responsible for converged.

    ``accept(key)`` says which applications this replica reconciles (all, or those of
    its shards); call :meth:`refilter` when that answer changes.
    """

    def __init__(self, api: OperatorAPI, store: ClusterStatusStore, operator: Any, *,
                 namespace: str | None = None, kubeconfig: str | None = None,
                 context: str | None = None,
                 accept: Callable[[str], bool] = lambda _key: True) -> None:
        self._api = api
        self._store = store
        self._operator = operator
        self._namespace = namespace
        self._kubeconfig, self._context = kubeconfig, context
        self._accept = accept
        self._invalid: dict[str, str] = {}
        operator.on_status(self._on_status)
        operator.dependency_status = self._status_of

    def _status_of(self, key: str) -> AppStatus | None:
        """The status of any watched Application (a dependency another replica reconciles)."""
        try:
            return status_in(self._store.object(key), key)
        except InputError:
            return None

    # -- objects -> scheduler --------------------------------------------------------------

    def sync_all(self) -> str:
        """List every Application and hand them to the scheduler; the list's resourceVersion."""
        objects, version = self._api.list_applications(self._namespace)
        keys = set()
        for obj in objects:
            keys.add(self._observe(obj))
        gone = [k for k in self._store.objects() if k not in keys]
        for key in gone:
            self._deleted(key)
        return version

    def _observe(self, obj: dict[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        before = self._store.object(key)
        self._store.seen(obj)
        self._hand_over(key, obj)
        asked = (meta.get("annotations") or {}).get(REQUESTED_AT)
        if asked and before is not None and asked != (
                (before.get("metadata") or {}).get("annotations") or {}).get(REQUESTED_AT):
            self._operator.trigger(key, "webhook")  # another replica passed a webhook on
        return key

    # -- webhooks, wherever they land -------------------------------------------------------

    def request(self, key: str) -> bool:
        """Reconcile application ``key`` now, on whichever replica is responsible for it.

        This replica's own applications are triggered at once; another replica's (a
        shard it does not hold, or any while it is a standby) get the annotation
        ``gitops.dev/requested-at``, which that replica's watch turns into a reconcile.
        False if there is no such Application.
        """
        if self._store.object(key) is None:
            return False
        if self._accept(key) and self._operator.trigger(key, "webhook"):
            return True
        namespace, _, name = key.partition("/")
        try:
            self._api.patch_application_metadata(
                namespace, name, {"annotations": {REQUESTED_AT: now().isoformat()}})
        except (StatusError, TransportError) as exc:
            log.warning("%s: cannot pass the webhook on: %s", key, exc, extra={"app": key})
            return False
        return True

    def matching(self, event: PushEvent) -> list[str]:
        """Keys of the (valid) Applications whose git source ``event`` pushed to."""
        objects = self._store.objects()
        keys = []
        for key, obj in objects.items():
            source = (obj.get("spec") or {}).get("source") or {}
            url, options = source.get("url"), source.get("options") or {}
            if (isinstance(url, str) and key not in self._invalid
                    and pushed_to(event, url, options.get("semver"))):
                keys.append(key)
        return sorted(keys)

    def _hand_over(self, key: str, obj: dict[str, Any]) -> None:
        if not self._accept(key):
            self._operator.remove(key)
            return
        try:
            app = with_cluster_defaults(Application.from_object(_without_request(obj)),
                                        self._kubeconfig, self._context)
        except InputError as exc:
            self._operator.remove(key)
            self._refuse(key, obj, str(exc))
            return
        self._invalid.pop(key, None)
        generation = int((obj.get("metadata") or {}).get("generation") or 0)
        self._operator.upsert(app, generation=generation)

    def _refuse(self, key: str, obj: dict[str, Any], message: str) -> None:
        """An invalid Application: Stalled, with a Warning event, once per message."""
        if self._invalid.get(key) == message:
            return
        self._invalid[key] = message
        log.error("%s", message, extra={"app": key, "reason": "InvalidSpec"})
        stamp = now()
        generation = int((obj.get("metadata") or {}).get("generation") or 0)
        conditions = [
            Condition(type="Ready", status="False", reason="InvalidSpec", message=message,
                      last_transition_time=stamp, observed_generation=generation),
            Condition(type="Reconciling", status="False", reason="InvalidSpec",
                      last_transition_time=stamp, observed_generation=generation),
            Condition(type="Stalled", status="True", reason="InvalidSpec", message=message,
                      last_transition_time=stamp, observed_generation=generation),
        ]
        meta = obj.get("metadata") or {}
        status = cluster_status(AppStatus(message=message, observed_generation=generation,
                                          conditions=tuple(conditions)))
        try:
            self._api.write_status(str(meta.get("namespace")), str(meta.get("name")), status)
        except (StatusError, TransportError) as exc:
            log.warning("%s: cannot write its status: %s", key, exc)
        _event(self._api, obj, "Warning", "InvalidSpec", message)

    def _deleted(self, key: str) -> None:
        self._invalid.pop(key, None)
        self._store.forget(key)
        self._operator.remove(key)

    def refilter(self) -> None:
        """Hand over or withdraw applications after ``accept`` changed its answers."""
        for key, obj in self._store.objects().items():
            self._hand_over(key, obj)

    def _on_status(self, app: Application, status: AppStatus, reason: str) -> None:
        obj = self._store.object(app.key)
        if obj is not None:
            _event(self._api, obj, _EVENT_TYPES.get(reason, "Normal"), reason, status.message)

    # -- the watch loop --------------------------------------------------------------------

    def run(self, stop: threading.Event, *, retry: float = 2.0) -> None:
        """List, then watch until ``stop`` is set; list again after a 410 or a broken watch."""
        version = ""
        while not stop.is_set():
            try:
                if not version:
                    version = self.sync_all()
                watch = self._api.watch_applications(version, namespace=self._namespace,
                                                     timeout_seconds=60)
                done = threading.Event()
                threading.Thread(target=_close_when, args=(stop, done, watch),
                                 daemon=True).start()
                try:
                    with watch:
                        for kind, obj in watch:
                            if stop.is_set():
                                break
                            if kind == "DELETED":
                                meta = obj.get("metadata") or {}
                                self._deleted(f"{meta.get('namespace')}/{meta.get('name')}")
                            else:
                                self._observe(obj)
                        version = watch.resource_version
                finally:
                    done.set()
            except Expired:
                version = ""  # too old: list again
            except (StatusError, TransportError, GitopsError) as exc:
                if stop.is_set():
                    break
                log.warning("watching Applications failed (%s); retrying", exc)
                version = ""
                stop.wait(retry)


def _without_request(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without the webhook request annotation (not part of the application)."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if REQUESTED_AT not in annotations:
        return obj
    rest = {k: v for k, v in annotations.items() if k != REQUESTED_AT}
    return {**obj, "metadata": {**meta, "annotations": rest}}


def _close_when(stop: threading.Event, done: threading.Event, watch: Any) -> None:
    """Close ``watch`` once ``stop`` is set, so a blocked read ends (or return when done)."""
    while not stop.wait(0.5):
        if done.is_set():
            return
    try:
        watch.close()
    except Exception:
        log.debug("closing the watch failed", exc_info=True)
