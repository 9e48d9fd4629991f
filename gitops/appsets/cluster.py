"""ApplicationSets in a cluster (``gitops controller``): the CRD, the watch, generated objects.

``applicationsets.gitops.dev`` (:func:`applicationset_crd`, printed by ``gitops crds`` and
``gitops install``) is watched; each set is evaluated by the same
:class:`~gitops.appsets.controller.SetController` as in ``gitops run``, whose Applications
become ``Application`` objects (:class:`ClusterSink`): created or updated by server-side
apply (field manager ``gitops-applicationset``) with an ``ownerReference`` to the set,
deleted when the set's policy says (their objects pruned first through
:meth:`Operator.delete`). An owned Application that differs from what the set generates
(edited by hand) is put back within a tick. The rollout state is the set's
``status.rollout`` (status subresource). This module never writes anything but
ApplicationSet status and Application objects the sets own.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gitops.apps.spec import API_VERSION, GROUP, VERSION, Application
from gitops.appsets.controller import SetController
from gitops.appsets.generate import OWNER_ANNOTATION
from gitops.appsets.rollout import RolloutState
from gitops.appsets.spec import ApplicationSet
from gitops.errors import GitopsError, InputError
from gitops.operator.cluster import ClusterStatusStore, status_in, with_cluster_defaults
from gitops.operator.crd import _structural
from gitops.operator.kubeapi import MERGE_PATCH, Expired, OperatorAPI, Watch
from gitops.operator.scheduler import Notifier, Operator
from gitops.operator.status import AppStatus
from gitops.targets.kubernetes.errors import StatusError, TransportError

__all__ = ["CRD_NAME", "PLURAL", "RBAC_RULES", "ClusterRollouts", "ClusterSets", "ClusterSink",
           "applicationset_crd", "get_appset"]

log = logging.getLogger("gitops.appsets")

KIND = "ApplicationSet"
PLURAL = "applicationsets"
CRD_NAME = f"{PLURAL}.{GROUP}"
FIELD_MANAGER = "gitops-applicationset"
_APPLY_PATCH = "application/apply-patch+yaml"
_BASE = f"/apis/{GROUP}/{VERSION}"

#: what the controller needs besides the Application rules of ``gitops install``
RBAC_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["get", "update", "patch"]},
    {"apiGroups": [GROUP], "resources": ["applications"], "verbs": ["create", "delete"]},
)


def applicationset_crd() -> dict[str, Any]:
    """The CRD ``applicationsets.gitops.dev``: ``spec`` derived from the pydantic model,
    ``status`` free-form (the rollout state), the status subresource, PHASE/STEP/HOLDING
    printer columns."""
    model = ApplicationSet.model_json_schema(by_alias=True)
    defs = copy.deepcopy(model.get("$defs", {}))
    step = defs["RollingSyncStep"]["properties"]
    described = step["maxUpdate"].get("description", "a count or a percent")
    step["maxUpdate"] = {"type": "string"}  # int-or-string: set below
    spec = _structural(model["properties"]["spec"], defs, "spec")
    steps = spec["properties"]["strategy"]["properties"]["rollingSync"]["properties"]["steps"]
    steps["items"]["properties"]["maxUpdate"] = {"description": described,
                                                 "x-kubernetes-int-or-string": True}
    schema = {
        "description": "Applications generated from parameters (generators) and a template.",
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "labels": {"app.kubernetes.io/name": "gitops",
                                                  "app.kubernetes.io/part-of": "gitops"}},
        "spec": {
            "group": GROUP,
            "names": {"kind": KIND, "listKind": f"{KIND}List", "plural": PLURAL,
                      "singular": "applicationset", "shortNames": ["gappset", "gappsets"]},
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": schema},
                "additionalPrinterColumns": [
                    {"name": "PHASE", "type": "string", "jsonPath": ".status.rollout.phase"},
                    {"name": "STEP", "type": "integer", "jsonPath": ".status.rollout.step"},
                    {"name": "HOLDING", "type": "string", "jsonPath": ".status.rollout.holding"},
                    {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
            }],
        },
    }


def _sets_path(namespace: str | None) -> str:
    return f"{_BASE}/{PLURAL}" if namespace is None else f"{_BASE}/namespaces/{namespace}/{PLURAL}"


def _apps_path(namespace: str, name: str = "") -> str:
    base = f"{_BASE}/namespaces/{namespace}/applications"
    return f"{base}/{name}" if name else base


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


class ClusterSink:
    """Application objects owned by their set (see the module documentation)."""

    always = True

    def __init__(self, api: OperatorAPI, store: ClusterStatusStore, operator: Operator,
                 sets: Callable[[str], Mapping[str, Any] | None], *,
                 kubeconfig: str | None = None, context: str | None = None,
                 namespace: str | None = None) -> None:
        self._api = api
        self._namespace = namespace  # the controller's (None: all): where owned ones are
        self._store = store
        self._operator = operator
        self._sets = sets
        self._kubeconfig, self._context = kubeconfig, context
        self._refused: dict[str, str] = {}
        #: key -> (resourceVersion, Application) last found the same: not parsed again
        self._checked: dict[str, tuple[Any, Application]] = {}

    def publish(self, static: Sequence[Application],
                generated: Mapping[str, Mapping[str, Application]]) -> None:
        for set_key, apps in generated.items():
            owner = self._sets(set_key)
            if owner is None:
                continue
            for key, app in apps.items():
                obj = self._store.object(key)
                seen = (obj or {}).get("metadata", {}).get("resourceVersion")
                if self._checked.get(key) == (seen, app):
                    continue  # neither changed since it was found the same
                if self._same(obj, app, owner):
                    self._checked[key] = (seen, app)
                else:
                    self._checked.pop(key, None)
                    self._apply(app, owner)

    def _same(self, obj: Mapping[str, Any] | None, app: Application,
              owner: Mapping[str, Any]) -> bool:
        if obj is None:
            return False
        uid = (owner.get("metadata") or {}).get("uid")
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        if not any(r.get("uid") == uid for r in refs if isinstance(r, Mapping)):
            return False
        meta = dict(obj.get("metadata") or {})
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                       if k != "gitops.dev/requested-at"}
        try:
            live = Application.from_object({**obj, "metadata": {**meta,
                                                                "annotations": annotations}})
        except InputError:
            return False
        return live == app

    def _apply(self, app: Application, owner: Mapping[str, Any]) -> None:
        meta = owner.get("metadata") or {}
        body = app.to_dict()
        body["metadata"]["ownerReferences"] = [{
            "apiVersion": API_VERSION, "kind": KIND, "name": meta.get("name"),
            "uid": meta.get("uid"), "controller": True, "blockOwnerDeletion": True}]
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        try:
            stored = self._api.client.request(
                "PATCH", _apps_path(app.namespace, app.name), query=query, body=body,
                content_type=_APPLY_PATCH, verb="patch")
        except (StatusError, TransportError) as exc:
            if self._refused.get(app.key) != str(exc):
                log.error("%s: cannot write the generated Application: %s", app.key, exc,
                          extra={"app": app.key})
            self._refused[app.key] = str(exc)
            return
        self._refused.pop(app.key, None)
        if isinstance(stored, dict) and not self._same(stored, app, owner):
            stored = self._remove_additions(app, stored, body) or stored
        if isinstance(stored, dict):
            self._store.seen(stored)
        log.info("%s: Application written for %s", app.key, _key(owner),
                 extra={"app": app.key, "reason": "ApplicationGenerated"})

    def _remove_additions(self, app: Application, stored: Mapping[str, Any],
                          body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Take away what a hand edit added (a field, label or annotation the generated
        Application does not have): server-side apply leaves what another field manager
        owns in place. A JSON merge patch setting each to null; the object it returns."""
        meta, wanted = stored.get("metadata") or {}, body["metadata"]
        patch: dict[str, Any] = {}
        for part in ("labels", "annotations"):
            extra = {k: None for k in meta.get(part) or {}
                     if k not in wanted.get(part, {}) and k != "gitops.dev/requested-at"}
            if extra:
                patch.setdefault("metadata", {})[part] = extra
        spec = _additions(stored.get("spec"), body["spec"])
        if spec:
            patch["spec"] = spec
        if not patch:
            return None
        try:
            edited = self._api.client.request("PATCH", _apps_path(app.namespace, app.name),
                                              body=patch, content_type=MERGE_PATCH,
                                              verb="patch")
        except (StatusError, TransportError) as exc:
            log.error("%s: cannot put back the generated Application: %s", app.key, exc,
                      extra={"app": app.key})
            return None
        return edited if isinstance(edited, dict) else None

    def give_up(self, app: Application, *, prune: bool) -> None:
        self._checked.pop(app.key, None)
        self._refused.pop(app.key, None)
        if prune:
            self._operator.delete(app.key, with_cluster_defaults(app, self._kubeconfig,
                                                                 self._context))
        try:
            self._api.client.request("DELETE", _apps_path(app.namespace, app.name),
                                     verb="delete")
        except StatusError as exc:
            if exc.code != 404:
                log.error("%s: cannot delete the Application: %s", app.key, exc)
        except TransportError as exc:
            log.error("%s: cannot delete the Application: %s", app.key, exc)

    def status(self, app: Application) -> AppStatus | None:
        try:
            return status_in(self._store.object(app.key), app.key)
        except InputError:
            return None

    def owned(self, appset: ApplicationSet) -> dict[str, Application]:
        """The set's Application objects, listed from the API server (once per set), in
        every namespace the controller serves: a template may name another namespace."""
        found: dict[str, Application] = {}
        try:
            objects, _ = self._api.list_applications(self._namespace)
        except (StatusError, TransportError) as exc:
            raise InputError(f"ApplicationSet {appset.key}: cannot list its Applications: "
                             f"{exc}") from exc
        for obj in objects:
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            if annotations.get(OWNER_ANNOTATION) == appset.key:
                try:
                    found[_key(obj)] = Application.from_object(obj)
                except InputError:
                    continue
        return found


def _additions(live: Any, wanted: Any) -> Any:
    """A JSON merge patch from ``live`` to ``wanted`` for what ``live`` has in addition:
    keys ``wanted`` lacks set to null, lists that differ given whole; None if nothing."""
    if isinstance(live, Mapping) and isinstance(wanted, Mapping):
        patch: dict[str, Any] = {}
        for key, value in live.items():
            if key not in wanted:
                patch[key] = None
            else:
                inner = _additions(value, wanted[key])
                if inner is not None:
                    patch[key] = inner
        return patch or None
    if isinstance(live, list) and isinstance(wanted, list) and live != wanted:
        return wanted
    return None


def get_appset(api: OperatorAPI, name: str) -> ApplicationSet:
    """The ApplicationSet object ``NAMESPACE/NAME`` (``NAME``: in ``default``)."""
    namespace, _, short = name.rpartition("/")
    namespace = namespace or "default"
    try:
        obj = api.client.request("GET", f"{_sets_path(namespace)}/{short}", verb="get")
    except StatusError as exc:
        if exc.code == 404:
            raise InputError(f"no ApplicationSet {namespace}/{short} in the cluster") from None
        raise InputError(f"ApplicationSet {namespace}/{short}: {exc}") from exc
    return _model(obj)


def _model(obj: Mapping[str, Any]) -> ApplicationSet:
    """An ApplicationSet object as the model; InputError naming it if invalid."""
    return ApplicationSet.from_object({"apiVersion": API_VERSION, "kind": KIND, **obj})


class ClusterRollouts:
    """Rollout states in the status subresource of each ApplicationSet (``status.rollout``)."""

    def __init__(self, api: OperatorAPI) -> None:
        self._api = api

    def _get(self, appset: ApplicationSet) -> dict[str, Any] | None:
        try:
            obj = self._api.client.request(
                "GET", f"{_sets_path(appset.namespace)}/{appset.name}", verb="get")
        except StatusError as exc:
            if exc.code == 404:
                return None
            raise InputError(f"ApplicationSet {appset.key}: {exc}") from exc
        return obj if isinstance(obj, dict) else None

    def read(self, appset: ApplicationSet) -> RolloutState | None:
        obj = self._get(appset)
        rollout = ((obj or {}).get("status") or {}).get("rollout")
        return RolloutState.model_validate(rollout) if isinstance(rollout, dict) else None

    def update(self, appset: ApplicationSet,
               change: Callable[[RolloutState | None], RolloutState]) -> RolloutState:
        """Read, change and write ``status.rollout`` as a compare-and-swap on the object's
        resourceVersion (``gitops rollout resume`` and the controller never lose a write)."""
        for _ in range(5):
            obj = self._get(appset)
            if obj is None:
                raise InputError(f"no ApplicationSet {appset.key} in the cluster")
            rollout = (obj.get("status") or {}).get("rollout")
            before = RolloutState.model_validate(rollout) if isinstance(rollout, dict) else None
            after = change(before)
            if after == before:
                return after
            version = (obj.get("metadata") or {}).get("resourceVersion")
            try:
                self._api.client.request(
                    "PATCH", f"{_sets_path(appset.namespace)}/{appset.name}/status",
                    body={"metadata": {"resourceVersion": version},
                          "status": {"rollout": after.to_dict()}},
                    content_type=MERGE_PATCH, verb="patch status")
            except StatusError as exc:
                if exc.code == 409:
                    continue
                raise InputError(f"ApplicationSet {appset.key}: cannot write its status: "
                                 f"{exc}") from exc
            except TransportError as exc:
                raise InputError(f"ApplicationSet {appset.key}: cannot write its status: "
                                 f"{exc}") from exc
            return after
        raise InputError(f"ApplicationSet {appset.key}: its status kept changing; try again")


class ClusterSets:
    """Watches ApplicationSet objects and keeps a :class:`SetController` on them."""

    def __init__(self, api: OperatorAPI, store: ClusterStatusStore, operator: Operator, *,
                 namespace: str | None = None, kubeconfig: str | None = None,
                 context: str | None = None, accept: Callable[[str], bool] = lambda _k: True,
                 notifier: Notifier | None = None, tick: float = 1.0) -> None:
        self._api = api
        self._namespace = namespace
        self._accept = accept
        self._objects: dict[str, dict[str, Any]] = {}
        self._specs: dict[str, Any] = {}
        self._valid: dict[str, ApplicationSet] = {}  # the last valid model of each set
        self._changing = threading.Lock()
        self._lock = threading.Lock()
        sink = ClusterSink(api, store, operator, self._object, kubeconfig=kubeconfig,
                           context=context, namespace=namespace)
        self.controller = SetController(sink, ClusterRollouts(api), notifier=notifier, tick=tick)
        self._thread: threading.Thread | None = None

    def _object(self, key: str) -> Mapping[str, Any] | None:
        with self._lock:
            return self._objects.get(key)

    def start(self, stop: threading.Event) -> None:
        """Watch in a thread until ``stop`` is set."""
        self._thread = threading.Thread(target=self._run, args=(stop,), name="gitops-appsets-watch",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.controller.close()
        if self._thread is not None:
            self._thread.join(10)

    def refilter(self) -> None:
        """Take the sets again after ``accept`` changed its answers."""
        self._changed(force=True)

    def _changed(self, *, force: bool = False) -> None:
        with self._changing:  # the watch thread and an election callback
            self._take(force=force)

    def _take(self, *, force: bool) -> None:
        with self._lock:
            objects = dict(self._objects)
        sets: list[ApplicationSet] = []
        specs: dict[str, Any] = {}
        for key, obj in sorted(objects.items()):
            if not self._accept(key):  # another replica's now: released, never given up
                if key in self._specs:
                    self.controller.release(key)
                continue
            specs[key] = obj.get("spec")
            try:
                self._valid[key] = _model(obj)
            except InputError as exc:  # the last valid version stays: nothing is deleted
                if specs.get(key) != self._specs.get(key):
                    log.error("ApplicationSet %s is invalid (its last valid spec is kept): %s",
                              key, str(exc).splitlines()[0],
                              extra={"app": key, "reason": "InvalidSpec"})
            if key in self._valid:
                sets.append(self._valid[key])
        for key in [k for k in self._valid if k not in objects]:
            del self._valid[key]  # deleted
        if force or specs != self._specs:  # status writes (ours) do not re-evaluate
            self._specs = specs
            self.controller.apply([], sets)

    def _run(self, stop: threading.Event) -> None:
        version = ""
        while not stop.is_set():
            try:
                if not version:
                    body = self._api.client.request("GET", _sets_path(self._namespace),
                                                    verb="list")
                    with self._lock:
                        self._objects = {_key(o): o for o in body.get("items") or []
                                         if isinstance(o, dict)}
                    version = str((body.get("metadata") or {}).get("resourceVersion") or "")
                    self._changed()
                query = [("resourceVersion", version), ("allowWatchBookmarks", "true")]
                stream = self._api.client.watch(_sets_path(self._namespace), query, 30)
                watch = Watch(stream, version, f"watch {PLURAL}", self._api.client.url)
                closer = threading.Thread(target=_close_on, args=(stop, watch), daemon=True)
                closer.start()
                with watch:
                    for kind, obj in watch:
                        with self._lock:
                            if kind == "DELETED":
                                self._objects.pop(_key(obj), None)
                            else:
                                obj["apiVersion"], obj["kind"] = API_VERSION, KIND
                                self._objects[_key(obj)] = obj
                        self._changed()
                    version = watch.resource_version
            except Expired:
                version = ""
            except (StatusError, TransportError, GitopsError) as exc:
                if stop.is_set():
                    break
                log.warning("watching ApplicationSets failed (%s); retrying", exc)
                version = ""
                stop.wait(2.0)


def _close_on(stop: threading.Event, watch: Watch) -> None:
    stop.wait()
    try:
        watch.close()
    except Exception:
        log.debug("closing the watch failed", exc_info=True)
