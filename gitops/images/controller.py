"""Image automation in a cluster: the CRDs, the status subresource, and the watch.

- :func:`image_crds`: ``imagepolicies.gitops.dev`` and ``imageupdateautomations.gitops.dev``
  (namespaced, ``v1alpha1``, the status subresource, printer columns), their ``spec``
  schema derived from the pydantic models as the Application CRD's is
  (:mod:`gitops.operator.crd`); ``gitops crds`` and ``gitops install`` print them.
- :class:`ClusterImageStatusStore`: status in each object's status subresource (a merge
  patch), read from the objects the watch saw.
- :class:`ImageController`: lists and watches both kinds and hands the valid objects to
  an :class:`~gitops.images.automation.ImageAutomation`; an invalid one gets
  ``Ready=False`` with reason ``InvalidSpec`` naming each problem.

With ``--leader-elect`` only the leader runs image automation; with ``--shards N`` the
image objects of one namespace are run by the replica holding ``shard_of(namespace)``
(an automation needs the choices of every policy of its namespace).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gitops.apps.load import SERVER_METADATA, _validate_declaration
from gitops.apps.spec import API_VERSION, GROUP, VERSION
from gitops.errors import GitopsError, InputError
from gitops.images.automation import ImageAutomation, ImageNotifier, runner_for
from gitops.images.status import (
    AUTOMATION_KIND,
    POLICY_KIND,
    AutomationStatus,
    ImageKind,
    ImagePolicyStatus,
    status_from,
)
from gitops.operator.cluster import _close_when
from gitops.operator.crd import _condition_schema, _structural
from gitops.operator.kubeapi import MERGE_PATCH, Expired, OperatorAPI, Watch
from gitops.targets.kubernetes.errors import StatusError, TransportError

if TYPE_CHECKING:
    from gitops.operator.runtime import Runtime

__all__ = [
    "IMAGE_PLURALS",
    "ClusterImageStatusStore",
    "ImageController",
    "image_crd",
    "image_crds",
    "image_object",
    "run_in_cluster",
]

log = logging.getLogger("gitops.images")

#: kind -> plural of the resources
IMAGE_PLURALS: dict[ImageKind, str] = {
    POLICY_KIND: "imagepolicies",
    AUTOMATION_KIND: "imageupdateautomations",
}
_SINGULAR: dict[ImageKind, str] = {POLICY_KIND: "imagepolicy",
                                   AUTOMATION_KIND: "imageupdateautomation"}
_SHORT_NAMES: dict[ImageKind, list[str]] = {POLICY_KIND: ["gimgpol"],
                                            AUTOMATION_KIND: ["gimgupd"]}


# -- CRDs ------------------------------------------------------------------------------------


def _model(kind: ImageKind) -> Any:
    from gitops.images.spec import ImagePolicy, ImageUpdateAutomation

    return ImagePolicy if kind == POLICY_KIND else ImageUpdateAutomation


def _spec_schema(kind: ImageKind) -> dict[str, Any]:
    model = _model(kind).model_json_schema(by_alias=True)
    defs: Mapping[str, Any] = model.get("$defs", {})
    spec = _structural(model["properties"]["spec"], defs, "spec")
    return spec


def _status_schema(kind: ImageKind) -> dict[str, Any]:
    text = {"type": "string", "nullable": True}
    time = {"type": "string", "format": "date-time", "nullable": True}
    fields: dict[str, Any] = {
        "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
        "message": {**text, "description": "what the last run found or did"},
        "conditions": {"type": "array", "description": "Ready, as a Kubernetes condition",
                       "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                       "items": _condition_schema()},
    }
    if kind == POLICY_KIND:
        fields.update({
            "latestImage": {**text, "description": "HOST/REPO:TAG the policy chose"},
            "latestTag": {**text, "description": "the tag the policy chose"},
            "digest": {**text, "description": "the digest of the chosen tag, when known"},
        })
    else:
        fields.update({
            "lastAutomationRunTime": {**time, "description": "when the automation last ran"},
            "lastPushCommit": {**text, "description": "the last commit pushed"},
            "lastPushTime": {**time, "description": "when it was pushed"},
        })
    return {"description": "What the controller observed and did; written through the "
                           "status subresource.", "type": "object", "properties": fields}


def _columns(kind: ImageKind) -> list[dict[str, Any]]:
    ready = {"name": "Ready", "type": "string",
             "jsonPath": '.status.conditions[?(@.type=="Ready")].status'}
    age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    if kind == POLICY_KIND:
        return [{"name": "Image", "type": "string", "jsonPath": ".spec.image"},
                {"name": "Latest", "type": "string", "jsonPath": ".status.latestImage"},
                ready, age]
    return [{"name": "Last Push", "type": "string", "jsonPath": ".status.lastPushCommit"},
            {"name": "Last Run", "type": "date", "jsonPath": ".status.lastAutomationRunTime"},
            ready, age]


def image_crd(kind: ImageKind) -> dict[str, Any]:
    """The CRD of ``kind`` (``ImagePolicy`` or ``ImageUpdateAutomation``)."""
    plural = IMAGE_PLURALS[kind]
    model = _model(kind).model_json_schema(by_alias=True)
    name = _structural(model["$defs"]["Metadata"]["properties"]["name"], model["$defs"],
                       "metadata.name")
    name.pop("description", None)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}",
                     "labels": {"app.kubernetes.io/name": "gitops",
                                "app.kubernetes.io/part-of": "gitops"}},
        "spec": {
            "group": GROUP,
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                      "singular": _SINGULAR[kind], "shortNames": list(_SHORT_NAMES[kind])},
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {
                    "description": _model(kind).__doc__.strip().splitlines()[0].replace(
                        "``", "`"),
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string", "description": API_VERSION},
                        "kind": {"type": "string", "description": kind},
                        "metadata": {"type": "object", "properties": {"name": name}},
                        "spec": _spec_schema(kind),
                        "status": _status_schema(kind),
                    },
                }},
                "subresources": {"status": {}},
                "additionalPrinterColumns": _columns(kind),
            }],
        },
    }


def image_crds() -> list[dict[str, Any]]:
    """The CRDs of ``ImagePolicy`` and ``ImageUpdateAutomation``."""
    return [image_crd(POLICY_KIND), image_crd(AUTOMATION_KIND)]


# -- objects -----------------------------------------------------------------------------------


def _path(kind: ImageKind, namespace: str | None, name: str = "", subresource: str = "") -> str:
    base = f"/apis/{API_VERSION}"
    path = (f"{base}/namespaces/{namespace}/{IMAGE_PLURALS[kind]}" if namespace
            else f"{base}/{IMAGE_PLURALS[kind]}")
    for part in (name, subresource):
        if part:
            path += f"/{part}"
    return path


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def image_object(kind: ImageKind, obj: Mapping[str, Any]) -> Any:
    """The model of an object read from the API server (status and server-set metadata
    ignored); InputError naming the object and each problem."""
    data = {k: v for k, v in obj.items() if k != "status"}
    data.setdefault("apiVersion", API_VERSION)
    data["kind"] = kind
    meta = data.get("metadata")
    if isinstance(meta, Mapping):
        data["metadata"] = {k: v for k, v in meta.items() if k not in SERVER_METADATA}
    result = _validate_declaration(data)
    if isinstance(result, str):
        raise InputError(f"{kind} {_key(obj)}: {result}")
    return result


class ClusterImageStatusStore:
    """Image status in the status subresource of each object (see the module doc)."""

    def __init__(self, api: OperatorAPI) -> None:
        self._api = api
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def seen(self, kind: ImageKind, obj: Mapping[str, Any]) -> None:
        with self._lock:  # a watch's Watch fills in Application's kind when one is missing
            self._objects[(kind, _key(obj))] = {**obj, "apiVersion": API_VERSION, "kind": kind}

    def object(self, kind: ImageKind, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._objects.get((kind, key))

    def forget(self, kind: ImageKind, key: str) -> None:
        with self._lock:
            self._objects.pop((kind, key), None)

    def objects(self, kind: ImageKind) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {key: obj for (k, key), obj in self._objects.items() if k == kind}

    def read(self, kind: ImageKind, key: str) -> ImagePolicyStatus | AutomationStatus | None:
        with self._lock:
            obj = self._objects.get((kind, key))
        status = (obj or {}).get("status")
        if not isinstance(status, dict) or not status:
            return None
        return status_from(kind, status, f"{kind} {key}")

    def write(self, kind: ImageKind, key: str,
              status: ImagePolicyStatus | AutomationStatus) -> None:
        namespace, _, name = key.partition("/")
        with self._lock:
            obj = self._objects.get((kind, key))
        generation = int(((obj or {}).get("metadata") or {}).get("generation") or 0)
        conditions = tuple(c.model_copy(update={"observed_generation": generation})
                           for c in status.conditions)
        status = status.model_copy(update={"observed_generation": generation,
                                           "conditions": conditions})
        data: dict[str, Any] = {alias: None for alias in _aliases(type(status))}
        data.update(status.to_dict())  # a merge patch keeps what it does not mention
        try:
            stored = self._api.client.request(
                "PATCH", _path(kind, namespace, name, "status"), body={"status": data},
                content_type=MERGE_PATCH, verb="patch status")
        except StatusError as exc:
            if exc.code == 404:
                return  # deleted meanwhile: nothing to record it on
            raise InputError(f"{kind} {key}: cannot write its status: {exc}") from exc
        self.seen(kind, stored)


def _aliases(model: type[Any]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


class ImageController:
    """Watches ``ImagePolicy`` and ``ImageUpdateAutomation`` objects and keeps ``runner``
    running the valid ones this replica is responsible for.

    ``accept(namespace)`` says whether this replica runs the image objects of a namespace;
    it is asked again every ``recheck`` seconds (leadership and shards move).
    """

    def __init__(self, api: OperatorAPI, store: ClusterImageStatusStore,
                 runner: ImageAutomation, *, namespace: str | None = None,
                 accept: Callable[[str], bool] = lambda _namespace: True,
                 recheck: float = 1.0) -> None:
        self._api = api
        self._store = store
        self._runner = runner
        self._namespace = namespace
        self._accept = accept
        self._recheck = recheck
        self._invalid: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._handed: dict[tuple[str, str], Any] = {}

    def run(self, stop: threading.Event, *, retry: float = 2.0) -> None:
        """Watch both kinds until ``stop`` is set (one thread each), handing objects over."""
        threads = [threading.Thread(target=self._watch, args=(kind, stop, retry),
                                    name=f"gitops-watch-{IMAGE_PLURALS[kind]}", daemon=True)
                   for kind in IMAGE_PLURALS]
        for thread in threads:
            thread.start()
        while not stop.wait(self._recheck):
            self.refilter()
        for thread in threads:
            thread.join(5.0)

    def refilter(self) -> None:
        """Hand the runner exactly the valid objects this replica is responsible for."""
        wanted: dict[tuple[str, str], Any] = {}
        present: set[tuple[str, str]] = set()
        for kind in IMAGE_PLURALS:
            for key, obj in self._store.objects(kind).items():
                present.add((kind, key))
                if not self._accept(key.partition("/")[0]):
                    continue
                model = self._valid(kind, key, obj)
                if model is not None:
                    wanted[(kind, key)] = model
        with self._lock:
            # an invalid object deleted: forgotten (one made again is reported again)
            for ident in [i for i in list(self._invalid) if i not in present]:
                self._invalid.pop(ident, None)
            if wanted == self._handed:
                return
            self._handed = wanted
        self._runner.set_objects(
            [m for (k, _), m in sorted(wanted.items()) if k == POLICY_KIND],
            [m for (k, _), m in sorted(wanted.items()) if k == AUTOMATION_KIND])

    def _valid(self, kind: ImageKind, key: str, obj: dict[str, Any]) -> Any:
        try:
            model = image_object(kind, obj)
        except InputError as exc:
            self._refuse(kind, key, str(exc))
            return None
        self._invalid.pop((kind, key), None)
        return model

    def _refuse(self, kind: ImageKind, key: str, message: str) -> None:
        if self._invalid.get((kind, key)) == message:
            return
        self._invalid[(kind, key)] = message
        log.error("%s", message, extra={"reason": "InvalidSpec"})
        model = ImagePolicyStatus if kind == POLICY_KIND else AutomationStatus
        try:
            self._store.write(kind, key, model().with_ready(False, "InvalidSpec", message))
        except GitopsError as exc:
            log.warning("%s %s: %s", kind, key, exc)

    def _watch(self, kind: ImageKind, stop: threading.Event, retry: float) -> None:
        version = ""
        while not stop.is_set():
            try:
                if not version:
                    version = self._list(kind)
                    self.refilter()
                query = [("resourceVersion", version), ("allowWatchBookmarks", "true")]
                stream = self._api.client.watch(_path(kind, self._namespace), query, 60)
                watch = Watch(stream, version, f"watch {IMAGE_PLURALS[kind]}",
                              self._api.client.url)
                done = threading.Event()
                threading.Thread(target=_close_when, args=(stop, done, watch),
                                 daemon=True).start()
                try:
                    with watch:
                        for event, obj in watch:
                            if stop.is_set():
                                break
                            if event == "DELETED":
                                self._store.forget(kind, _key(obj))
                            else:
                                self._store.seen(kind, obj)
                            self.refilter()
                        version = watch.resource_version
                finally:
                    done.set()
            except Expired:
                version = ""
            except (StatusError, TransportError, GitopsError) as exc:
                if stop.is_set():
                    break
                if isinstance(exc, StatusError) and exc.code == 410:
                    version = ""
                    continue
                if isinstance(exc, StatusError) and exc.code == 404:
                    log.warning("%s: the CRD is not installed (gitops crds | kubectl apply "
                                "-f -); looking again in %.0fs", IMAGE_PLURALS[kind], retry * 5)
                    stop.wait(retry * 4)
                else:
                    log.warning("watching %s failed (%s); retrying", IMAGE_PLURALS[kind], exc)
                version = ""
                stop.wait(retry)

    def _list(self, kind: ImageKind) -> str:
        body = self._api.client.request("GET", _path(kind, self._namespace), verb="list")
        keys = set()
        for item in body.get("items") or []:
            if isinstance(item, dict):
                item.setdefault("kind", kind)
                self._store.seen(kind, item)
                keys.add(_key(item))
        for key in set(self._store.objects(kind)) - keys:
            self._store.forget(kind, key)
        return str((body.get("metadata") or {}).get("resourceVersion") or "")


def run_in_cluster(api: OperatorAPI, runtime: Runtime, stop: threading.Event, *,
                   namespace: str | None = None,
                   accept: Callable[[str], bool] = lambda _namespace: True) -> ImageController:
    """What ``gitops controller`` adds for image automation: a runner on ``runtime``
    (its metrics, notifications and webhook path; stopped by ``runtime.close()``) fed by
    an :class:`ImageController` watching on a thread until ``stop`` is set."""
    store = ClusterImageStatusStore(api)
    runner = runner_for(runtime, store, notifier=_Events(api, store, runtime.notifier))
    runtime.images = runner
    runner.start()
    controller = ImageController(api, store, runner, namespace=namespace, accept=accept)
    threading.Thread(target=controller.run, args=(stop,), name="gitops-images-watch",
                     daemon=True).start()
    return controller


class _Events:
    """Notifications of an automation also as Kubernetes Events on its object
    (``ImageUpdated`` Normal, ``ImageUpdateFailed`` Warning), then to ``--notify``."""

    def __init__(self, api: OperatorAPI, store: ClusterImageStatusStore,
                 notifier: ImageNotifier | None) -> None:
        self._api, self._store, self._notifier = api, store, notifier

    def notify(self, app: str, reason: str, revision: str | None, message: str) -> None:
        obj = self._store.object(AUTOMATION_KIND, app)
        if obj is not None:
            try:
                self._api.create_event(obj, "Normal" if reason == "ImageUpdated" else "Warning",
                                       reason, message)
            except (StatusError, TransportError, GitopsError) as exc:  # best effort
                log.debug("event %s not recorded: %s", reason, exc)
        if self._notifier is not None:
            self._notifier.notify(app, reason, revision, message)
