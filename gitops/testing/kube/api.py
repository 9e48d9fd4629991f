"""The API semantics of the emulator: what GET, LIST, POST, PUT, PATCH and DELETE do.

Every verb takes the resource being addressed (resolved by the HTTP layer through
:class:`~gitops.testing.kube.discovery.Discovery`) and plain Python values, and returns
plain JSON-able values or raises :class:`~gitops.testing.kube.status.StatusError`. It
validates, defaults, tracks managedFields, bumps generations, honours ``dryRun=All``,
and delegates deletion and garbage collection to :mod:`gitops.testing.kube.deletion`.
It never speaks HTTP.
"""

from __future__ import annotations

import base64
import bisect
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import yaml

from gitops.testing.kube import apply as ssa
from gitops.testing.kube.canonical import canonicalize
from gitops.testing.kube.controllers import populate_namespace, reconcile_status
from gitops.testing.kube.crds import establish, validate_crd
from gitops.testing.kube.defaults import apply_defaults, initial_status
from gitops.testing.kube.deletion import Deleter
from gitops.testing.kube.discovery import Discovery, ResourceType
from gitops.testing.kube.events import EVENT_FIELDS, event_causes
from gitops.testing.kube.jobs import JobController, job_annotation_causes
from gitops.testing.kube.jsondata import clone
from gitops.testing.kube.options import Params, dry_run, now, truthy
from gitops.testing.kube.patch import (
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)
from gitops.testing.kube.reviews import answer, is_create_only
from gitops.testing.kube.selectors import FieldGetter, parse_field_selector, parse_label_selector
from gitops.testing.kube.status import (
    StatusError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    not_found,
    unsupported_media_type,
)
from gitops.testing.kube.store import Event, Store
from gitops.testing.kube.validation import unknown_fields, validate, validate_immutable

__all__ = ["Api"]

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SERVER_META = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds")
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


class Api:
    """Verbs over a :class:`Store` for the resources a :class:`Discovery` serves."""

    def __init__(self, discovery: Discovery, store: Store, *, controllers: bool = True,
                 null_empty_bytes: bool = False) -> None:
        self.discovery = discovery
        self.store = store
        #: run the stand-in controllers (:mod:`gitops.testing.kube.controllers`) after writes
        self.controllers = controllers
        #: serve empty Secret ``data`` / ConfigMap ``binaryData`` values as ``null`` (see :mod:`.canonical`)
        self.null_empty_bytes = null_empty_bytes
        self._write_lock = threading.RLock()  # one write at a time: read-modify-write is atomic
        self.deleter = Deleter(self)
        #: the stand-in Job controller (its scheduler thread starts with the first Job)
        self.jobs = JobController(self)

    # -- helpers -----------------------------------------------------------------------------

    def output(self, rtype: ResourceType, version: str, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as served at ``version`` (custom resources: conversion ``None``)."""
        out = {"apiVersion": rtype.api_version(version), "kind": rtype.kind}
        out.update({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
        return out

    def _stored(self, rtype: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rtype.group, rtype.plural, namespace, name)
        if obj is None:
            raise not_found(rtype.group, rtype.plural, name)
        return obj

    def require_namespace(self, rtype: ResourceType, namespace: str, *, creating: bool) -> None:
        """Refuse writes into a missing (404) or terminating (403) namespace."""
        if not rtype.namespaced:
            return
        ns = self.store.peek("", "namespaces", "", namespace)
        if ns is None:
            raise not_found("", "namespaces", namespace)
        if creating and ns["metadata"].get("deletionTimestamp"):
            raise forbidden(
                f"{rtype.plural}{'.' + rtype.group if rtype.group else ''} \"\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                {"causes": [{"reason": "NamespaceTerminating", "message": f"namespace {namespace} is being terminated", "field": "metadata.namespace"}]},
            )

    def _typed(self, rtype: ResourceType, version: str, body: Any, namespace: str) -> dict[str, Any]:
        """Check a request body is an object of the addressed kind (defaulting kind/apiVersion)."""
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format - must be a JSON object")
        expected = rtype.api_version(version)
        body.setdefault("apiVersion", expected)
        body.setdefault("kind", rtype.kind)
        if body["kind"] != rtype.kind:
            raise bad_request(f"the object provided is unrecognized (must be of type {rtype.kind}): kind {body['kind']!r} does not match")
        if body["apiVersion"] != expected:
            raise bad_request(f"the API version in the data ({body['apiVersion']}) does not match the expected API version ({expected})")
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if rtype.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return body

    @staticmethod
    def _check_fields(rtype: ResourceType, version: str, obj: dict[str, Any], params: Params, *, apply: bool = False) -> None:
        """Fields the kind does not declare: 400 with ``fieldValidation=Strict``, else dropped
        (as a real server drops what its types or a structural schema cannot hold)."""
        mode = params.get("fieldValidation") or "Warn"
        if mode not in ("Ignore", "Warn", "Strict"):
            raise bad_request(f'fieldValidation: Unsupported value: "{mode}": supported values: "Ignore", "Strict", "Warn"')
        unknown = unknown_fields(rtype, obj)
        if not unknown:
            return
        if mode != "Strict":
            for field in unknown:
                if field.startswith("metadata."):
                    obj["metadata"].pop(field.removeprefix("metadata."), None)
                else:
                    obj.pop(field, None)
            return
        if apply:
            meta = obj.get("metadata") or {}
            where = f"{meta.get('namespace', '')}/{meta.get('name', '')}" if rtype.namespaced else str(meta.get("name", ""))
            gvk = f"{rtype.api_version(version)}, Kind={rtype.kind}"
            raise bad_request(f"failed to create typed patch object ({where}; {gvk}): .{unknown[0]}: field not declared in schema")
        fields = ", ".join(f'unknown field "{f}"' for f in unknown)
        raise bad_request(f'{rtype.kind} in version "{version}" cannot be handled as a {rtype.kind}: strict decoding error: {fields}')

    @staticmethod
    def _manager(params: Params, user_agent: str) -> str:
        manager = params.get("fieldManager")
        if manager is not None:
            if len(manager) > 128:
                raise invalid("", "", "", [("FieldValueTooLong", "fieldManager", "Too long: may not be more than 128 bytes")])
            return manager
        return (user_agent.split("/", 1)[0] or "unknown") if user_agent else "unknown"

    # -- reads -------------------------------------------------------------------------------

    def get(self, rtype: ResourceType, version: str, namespace: str, name: str) -> dict[str, Any]:
        return self.output(rtype, version, self._stored(rtype, namespace, name))

    def list(self, rtype: ResourceType, version: str, namespace: str | None, params: Params) -> dict[str, Any]:
        """A ``XxxList`` with the list resourceVersion; honours selectors, limit and continue."""
        labels = parse_label_selector(params.get("labelSelector"))
        fields = parse_field_selector(params.get("fieldSelector"), _field_labels(rtype))
        with self.store.lock:
            rv = self.store.resource_version
            items = self.store.select(rtype.group, rtype.plural, namespace, copy=False)
        items = [o for o in items if labels(o["metadata"].get("labels") or {}) and fields(o)]
        token = params.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                pair = state["start"]
                if not isinstance(pair, list) or len(pair) != 2:
                    raise ValueError("the start of a continue token is [namespace, name]")
                start = (str(pair[0]), str(pair[1]))
                rv = int(state["rv"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)") from None
            if rv < self.store.compacted:
                raise StatusError(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
            items = items[bisect.bisect_right(items, start, key=_sort_key):]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        limit = int(params.get("limit") or 0)
        if limit > 0 and len(items) > limit:
            rest = len(items) - limit
            items = items[:limit]
            state = {"start": _sort_key(items[-1]), "rv": rv}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            meta["remainingItemCount"] = rest
        served = [self.output(rtype, version, o) for o in items]
        if not rtype.custom:
            # typed lists carry no kind/apiVersion per item on a real server; custom ones do
            for item in served:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        return {"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version(version), "metadata": meta, "items": served}

    def watch(self, rtype: ResourceType, version: str, namespace: str | None, params: Params,
              stop: threading.Event, deadline: float) -> Iterator[dict[str, Any]]:
        """Watch events (JSON objects) until ``deadline`` (monotonic) or ``stop``.

        Parameters are checked before this returns, so errors come before any event. A
        resourceVersion older than the event log yields one ERROR event with a 410 Status.
        """
        labels = parse_label_selector(params.get("labelSelector"))
        fields = parse_field_selector(params.get("fieldSelector"), _field_labels(rtype))
        requested = params.get("resourceVersion") or ""
        initial = params.get("sendInitialEvents")
        with self.store.lock:
            current = self.store.resource_version
            if requested in ("", "0") or truthy(initial):
                start = current
                snapshot = self.store.select(rtype.group, rtype.plural, namespace, copy=False)
            else:
                try:
                    start = int(requested)
                except ValueError:
                    raise bad_request(f'invalid resource version "{requested}"') from None
                snapshot = []
                if start < self.store.compacted:
                    return iter([_expired(start, self.store.compacted)])

        def matches(obj: dict[str, Any] | None) -> bool:
            return obj is not None and labels(obj["metadata"].get("labels") or {}) and fields(obj)

        def relevant(event: Event) -> bool:
            if event.key[0] != rtype.group or event.key[1] != rtype.plural:
                return False
            return namespace is None or event.key[2] == namespace

        def stream() -> Iterator[dict[str, Any]]:
            for obj in snapshot:
                if matches(obj):
                    yield {"type": "ADDED", "object": self.output(rtype, version, obj)}
            if truthy(initial):
                yield self._bookmark(rtype, version, start, initial_end=True)
            last = start
            while not stop.is_set() and not self.store.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                with self.store.changed:
                    if self.store.resource_version <= last and not self.store.closed:
                        self.store.changed.wait(min(remaining, 0.5))
                    if last < self.store.compacted:
                        yield _expired(last, self.store.compacted)
                        return
                    events = list(self.store.events_after(last))
                for event in events:
                    last = event.rv
                    if not relevant(event):
                        continue
                    now_match, was_match = matches(event.obj), matches(event.prev)
                    kind = event.type
                    if kind == "MODIFIED" and now_match != was_match:
                        kind = "ADDED" if now_match else "DELETED"
                    elif not now_match and not (kind == "MODIFIED" and was_match):
                        continue
                    yield {"type": kind, "object": self.output(rtype, version, event.obj)}
            if truthy(params.get("allowWatchBookmarks")) and not self.store.closed:
                yield self._bookmark(rtype, version, last, initial_end=False)

        return stream()

    def _bookmark(self, rtype: ResourceType, version: str, rv: int, *, initial_end: bool) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"type": "BOOKMARK", "object": {"kind": rtype.kind, "apiVersion": rtype.api_version(version), "metadata": meta}}

    # -- writes ------------------------------------------------------------------------------

    def create(self, rtype: ResourceType, version: str, namespace: str, body: Any, params: Params,
               user_agent: str = "") -> dict[str, Any]:
        """POST: a new object (201), or AlreadyExists/NotFound/Invalid."""
        is_dry = dry_run(params)
        obj = self._typed(rtype, version, body, namespace)
        self._check_fields(rtype, version, obj, params)
        manager = self._manager(params, user_agent)
        with self._write_lock:
            if is_create_only(rtype):  # reviews and Binding: answered, never stored
                return answer(rtype, obj, lambda ns, pod, node: self._bind(ns, pod, node, manager, is_dry))
            return self._create(rtype, version, namespace, obj, manager, is_dry, ssa_config=None, force=False)

    def _bind(self, namespace: str, name: str, node: str, manager: str, is_dry: bool) -> None:
        """Assign a Pod to a Node, as ``pods/binding`` does (409 when it already has one)."""
        rtype = self.discovery.lookup("", "v1", "pods")
        assert rtype is not None
        old = self._stored(rtype, namespace, name)
        bound = (old.get("spec") or {}).get("nodeName")
        if bound:
            raise conflict("", "pods/binding", name, f'pod {name} is already assigned to node "{bound}"')
        new = clone(old)
        new.setdefault("spec", {})["nodeName"] = node
        self._update(rtype, "v1", old, new, manager, is_dry)

    def _create(self, rtype: ResourceType, version: str, namespace: str, obj: dict[str, Any], manager: str,
                is_dry: bool, *, ssa_config: dict[str, Any] | None, force: bool) -> dict[str, Any]:
        meta = obj["metadata"]
        if not meta.get("name"):
            if meta.get("generateName") and ssa_config is None:
                meta["name"] = meta["generateName"] + "".join(random.choices(_GENERATE_ALPHABET, k=5))
            else:
                raise invalid(rtype.kind, rtype.group, "", [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")])
        if meta.get("resourceVersion"):
            raise StatusError(500, "InternalError", "Internal error occurred: resourceVersion should not be set on objects to be created",
                              {"causes": [{"message": "resourceVersion should not be set on objects to be created"}]})
        self.require_namespace(rtype, namespace, creating=True)
        if self.store.exists(rtype.group, rtype.plural, namespace if rtype.namespaced else "", meta["name"]):
            raise already_exists(rtype.group, rtype.plural, meta["name"])
        for key in _SERVER_META:
            meta.pop(key, None)
        stamp = now()
        if ssa_config is not None:
            obj = ssa.apply(None, ssa_config, manager=manager, force=force, api_version=rtype.api_version(version),
                            now=stamp, has_status=rtype.has_status, list_types=self._list_types(rtype, version))
            meta = obj["metadata"]
            if rtype.namespaced:
                meta["namespace"] = namespace
        if rtype.has_status:
            status = initial_status(rtype.group, rtype.kind, rtype.custom)
            if status is None:
                obj.pop("status", None)
            else:
                obj["status"] = status
        apply_defaults(rtype.group, rtype.kind, obj, rtype.custom)
        canonicalize(rtype, version, obj, null_empty_bytes=self.null_empty_bytes)
        validate(rtype, obj)
        self._validate_custom(rtype, version, obj)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = stamp
        if rtype.has_generation:
            meta["generation"] = 1
        if ssa_config is None:
            obj.get("metadata", {}).pop("managedFields", None)
            ssa.track_update(None, obj, manager=manager, api_version=rtype.api_version(version), now=stamp,
                             has_status=rtype.has_status, list_types=self._list_types(rtype, version))
        obj = self._on_write(rtype, None, obj)
        if is_dry:
            return self.output(rtype, version, obj)
        stored = self.store.put(rtype.group, rtype.plural, obj)
        self._after_write(rtype, None, stored)
        return self.output(rtype, version, stored)

    def update(self, rtype: ResourceType, version: str, namespace: str, name: str, body: Any, params: Params,
               user_agent: str = "", subresource: str = "") -> dict[str, Any]:
        """PUT: replace the object (status for ``/status``); 409 on a stale resourceVersion."""
        is_dry = dry_run(params)
        obj = self._typed(rtype, version, body, namespace)
        if obj["metadata"].get("name") != name:
            raise bad_request(f"the name of the object ({obj['metadata'].get('name', '')}) does not match the name on the URL ({name})")
        self._check_fields(rtype, version, obj, params)
        manager = self._manager(params, user_agent)
        with self._write_lock:
            old = self._stored(rtype, namespace if rtype.namespaced else "", name)
            return self._update(rtype, version, old, obj, manager, is_dry, subresource=subresource)

    def patch(self, rtype: ResourceType, version: str, namespace: str, name: str, content_type: str, raw: bytes,
              params: Params, user_agent: str = "", subresource: str = "") -> tuple[int, dict[str, Any]]:
        """PATCH with one of the four patch types; returns (code, object)."""
        content_type = content_type.split(";")[0].strip().lower()
        # custom resources have no Go structs, so no strategic merge patch (as on a real server)
        accepted = tuple(t for t in PATCH_TYPES if not (rtype.custom and "strategic" in t))
        if content_type not in accepted:
            raise unsupported_media_type(accepted)
        is_dry = dry_run(params)
        is_apply = content_type.startswith("application/apply-patch")
        force = params.get("force")
        if force is not None and not is_apply:
            raise invalid(rtype.kind, rtype.group, name, [("FieldValueForbidden", "force", "Forbidden: may not be specified for non-apply patch")])
        try:
            patch = yaml.load(raw.decode("utf-8") or "null", Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if is_apply else json.loads(raw or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"error decoding patch: {exc}") from exc
        if is_apply:
            manager = params.get("fieldManager")
            if not manager:
                raise invalid(rtype.kind, rtype.group, name, [("FieldValueRequired", "fieldManager", "Required value: is required for apply patch")])
            with self._write_lock:
                return self._server_side_apply(rtype, version, namespace, name, patch, manager, truthy(force), is_dry,
                                               subresource, params)
        manager = self._manager(params, user_agent)
        with self._write_lock:
            old = self._stored(rtype, namespace if rtype.namespaced else "", name)
            current = self.output(rtype, version, old)
            if content_type == "application/json-patch+json":
                new = apply_json_patch(current, patch)
            elif content_type == "application/merge-patch+json":
                if not isinstance(patch, dict):
                    raise bad_request("merge patch must be a JSON object")
                new = apply_merge_patch(current, patch)
            else:
                new = apply_strategic_merge_patch(current, patch)
            new = self._typed(rtype, version, new, namespace)
            if new["metadata"].get("name") != name:
                raise bad_request(f"the name of the object ({new['metadata'].get('name', '')}) does not match the name on the URL ({name})")
            self._check_fields(rtype, version, new, params)
            return 200, self._update(rtype, version, old, new, manager, is_dry, subresource=subresource)

    def _server_side_apply(self, rtype: ResourceType, version: str, namespace: str, name: str, config: Any,
                           manager: str, force: bool, is_dry: bool, subresource: str,
                           params: Params) -> tuple[int, dict[str, Any]]:
        if not isinstance(config, dict):
            raise bad_request("error decoding YAML: the applied configuration must be an object")
        if not config.get("apiVersion") or not config.get("kind"):
            missing = "Kind" if not config.get("kind") else "apiVersion"
            raise bad_request(f"Object '{missing}' is missing in '{json.dumps(config)}'")
        config = self._typed(rtype, version, config, namespace)
        meta = config["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        meta["name"] = name
        self._check_fields(rtype, version, config, params, apply=True)
        # the applied configuration is decoded into the server's types before it is merged, so
        # "1000m" meets a stored "1" as the same value (no conflict, no change)
        canonicalize(rtype, version, config, quantities_only=True)
        old = self.store.get(rtype.group, rtype.plural, namespace if rtype.namespaced else "", name)
        if old is None:
            if subresource:
                raise not_found(rtype.group, rtype.plural, name)
            if meta.get("resourceVersion"):
                raise conflict(rtype.group, rtype.plural, name, "the object has been modified; please apply your changes to the latest version and try again")
            skeleton = {"apiVersion": config["apiVersion"], "kind": config["kind"], "metadata": {"name": name}}
            if rtype.namespaced:
                skeleton["metadata"]["namespace"] = namespace
            return 201, self._create(rtype, version, namespace, skeleton, manager, is_dry, ssa_config=config, force=force)
        rv = meta.pop("resourceVersion", None)
        if rv and rv != old["metadata"].get("resourceVersion"):
            raise conflict(rtype.group, rtype.plural, name, "the object has been modified; please apply your changes to the latest version and try again")
        for key in _SERVER_META:
            meta.pop(key, None)
        merged = ssa.apply(old, config, manager=manager, force=force, api_version=rtype.api_version(version), now=now(),
                           has_status=rtype.has_status, list_types=self._list_types(rtype, version), subresource=subresource)
        return 200, self._update(rtype, version, old, merged, manager, is_dry, subresource=subresource, tracked=True)

    def _update(self, rtype: ResourceType, version: str, old: dict[str, Any], new: dict[str, Any], manager: str,
                is_dry: bool, *, subresource: str = "", tracked: bool = False) -> dict[str, Any]:
        """The common tail of PUT and PATCH: preconditions, server fields, managedFields, store."""
        name = old["metadata"]["name"]
        sent_rv = new.get("metadata", {}).get("resourceVersion")
        if sent_rv and sent_rv != old["metadata"].get("resourceVersion"):
            raise conflict(rtype.group, rtype.plural, name, "the object has been modified; please apply your changes to the latest version and try again")
        if subresource == "status":
            candidate = clone(old)
            if "status" in new:
                candidate["status"] = new["status"]
            else:
                candidate.pop("status", None)
            if tracked:
                candidate["metadata"]["managedFields"] = new["metadata"].get("managedFields", [])
            new = candidate
        elif subresource:
            raise not_found(rtype.group, f"{rtype.plural}/{subresource}", name)
        elif rtype.has_status:
            if "status" in old:
                new["status"] = clone(old["status"])
            else:
                new.pop("status", None)
        meta = new.setdefault("metadata", {})
        for key in _SERVER_META:
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
            else:
                meta.pop(key, None)
        meta["resourceVersion"] = old["metadata"].get("resourceVersion")
        new["apiVersion"] = rtype.api_version(self._version_of(rtype, old, new))
        apply_defaults(rtype.group, rtype.kind, new, rtype.custom)
        canonicalize(rtype, self._version_of(rtype, old, new), new, null_empty_bytes=self.null_empty_bytes)
        validate(rtype, new)
        validate_immutable(rtype, old, new)
        self._validate_custom(rtype, self._version_of(rtype, old, new), new)
        if rtype.has_generation and _spec_of(new, rtype) != _spec_of(old, rtype):
            meta["generation"] = int(old["metadata"].get("generation") or 0) + 1
        if not tracked:
            ssa.track_update(old, new, manager=manager, api_version=new["apiVersion"], now=now(),
                             has_status=rtype.has_status, list_types=self._list_types(rtype, version), subresource=subresource)
        new = self._on_write(rtype, old, new)
        if _same(old, new):
            return self.output(rtype, version, old)  # a no-op write changes nothing, not even the resourceVersion
        if is_dry:
            return self.output(rtype, version, new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not (rtype.group == "" and rtype.kind == "Namespace"):
            gone = self.store.remove(rtype.group, rtype.plural, meta.get("namespace", ""), name)
            self.deleter.after_removal(rtype, gone)
            return self.output(rtype, version, gone or new)
        stored = self.store.put(rtype.group, rtype.plural, new)
        self._after_write(rtype, old, stored)
        if meta.get("deletionTimestamp"):
            self.deleter.settle()
        return self.output(rtype, version, stored)

    @staticmethod
    def _version_of(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> str:
        api_version = str(new.get("apiVersion") or old.get("apiVersion") or "")
        version = api_version.rsplit("/", 1)[-1]
        return version if version in rtype.versions else rtype.versions[0]

    # -- the scale subresource -------------------------------------------------------------------

    def get_scale(self, rtype: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        """``autoscaling/v1`` Scale of a workload."""
        return _scale_of(self._stored(rtype, namespace if rtype.namespaced else "", name))

    def write_scale(self, rtype: ResourceType, version: str, namespace: str, name: str, content_type: str | None,
                    raw: bytes, params: Params, user_agent: str = "") -> dict[str, Any]:
        """PUT (``content_type`` None) or PATCH of ``/scale``: changes ``spec.replicas`` only."""
        is_dry = dry_run(params)
        manager = self._manager(params, user_agent)
        with self._write_lock:
            old = self._stored(rtype, namespace if rtype.namespaced else "", name)
            scale = _scale_of(old)
            try:
                body = json.loads(raw or b"null")
            except ValueError as exc:
                raise bad_request(f"error decoding body: {exc}") from exc
            kind = (content_type or "").split(";")[0].strip().lower()
            if content_type is None:
                new_scale = body
            elif kind == "application/json-patch+json":
                new_scale = apply_json_patch(scale, body)
            elif kind in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                new_scale = apply_merge_patch(scale, body)
            else:
                raise unsupported_media_type(PATCH_TYPES[:3])
            replicas = ((new_scale or {}).get("spec") or {}).get("replicas") if isinstance(new_scale, dict) else None
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid("Scale", "autoscaling", name, [("FieldValueInvalid", "spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")])
            sent_rv = (new_scale.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != old["metadata"].get("resourceVersion"):
                raise conflict(rtype.group, rtype.plural, name, "the object has been modified; please apply your changes to the latest version and try again")
            new = clone(old)
            new.setdefault("spec", {})["replicas"] = replicas
            ssa.track_update(old, new, manager=manager, api_version=new.get("apiVersion", ""), now=now(),
                             has_status=rtype.has_status, subresource="scale")
            stored = self._update(rtype, version, old, new, manager, is_dry, tracked=True)
            return _scale_of(stored)

    def delete(self, rtype: ResourceType, version: str, namespace: str, name: str, options: Any,
               params: Params) -> dict[str, Any]:
        with self._write_lock:
            return self.deleter.delete(rtype, version, namespace if rtype.namespaced else "", name, options, params)

    def delete_collection(self, rtype: ResourceType, version: str, namespace: str | None, options: Any,
                          params: Params) -> dict[str, Any]:
        listing = self.list(rtype, version, namespace, {k: v for k, v in params.items() if k in ("labelSelector", "fieldSelector")})
        for item in listing["items"]:
            meta = item["metadata"]
            try:
                self.delete(rtype, version, meta.get("namespace", ""), meta["name"], options, params)
            except StatusError as exc:
                if exc.code != 404:
                    raise
        listing["items"] = [self.output(rtype, version, i) for i in listing["items"]] if rtype.custom else listing["items"]
        return listing

    # -- hooks ---------------------------------------------------------------------------------

    def _list_types(self, rtype: ResourceType, version: str) -> dict[str, Any] | None:
        """For custom resources: list field name -> merge keys or "set", from the CRD schema."""
        if not rtype.custom:
            return None
        out: dict[str, Any] = {}
        schema = rtype.schemas.get(version)
        if isinstance(schema, dict):
            _collect_list_types(schema, "", out)
        return out

    def _validate_custom(self, rtype: ResourceType, version: str, obj: dict[str, Any]) -> None:
        """Kind-specific validation beyond :func:`~gitops.testing.kube.validation.validate`."""
        if rtype.group == "apiextensions.k8s.io" and rtype.kind == "CustomResourceDefinition":
            validate_crd(obj)
        elif rtype.group == "" and rtype.kind == "Event":
            causes = event_causes(obj)
            if causes:
                raise invalid("Event", "", str(obj["metadata"].get("name", "")), causes)
        elif rtype.group == "batch" and rtype.kind == "Job" and self.controllers:
            causes = job_annotation_causes(obj["metadata"])
            if causes:
                raise invalid("Job", "batch", str(obj["metadata"].get("name", "")), causes)

    def _on_write(self, rtype: ResourceType, old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
        if rtype.group == "apiextensions.k8s.io" and rtype.kind == "CustomResourceDefinition":
            return establish(new, self.discovery)
        return new

    def _after_write(self, rtype: ResourceType, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        is_crd = rtype.group == "apiextensions.k8s.io" and rtype.kind == "CustomResourceDefinition"
        if is_crd and not new["metadata"].get("deletionTimestamp"):
            self.discovery.add_crd(new)
        if old is None and rtype.group == "" and rtype.kind == "Namespace" and self.controllers:
            populate_namespace(self, new["metadata"]["name"])
        if self.controllers:
            reconcile_status(self, rtype, new)


def _collect_list_types(schema: dict[str, Any], name: str, out: dict[str, Any]) -> None:
    if schema.get("type") == "array":
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "map" and schema.get("x-kubernetes-list-map-keys"):
            out[name] = list(schema["x-kubernetes-list-map-keys"])
        elif list_type == "set":
            out[name] = "set"
        items = schema.get("items")
        if isinstance(items, dict):
            _collect_list_types(items, name, out)
    for key, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, dict):
            _collect_list_types(sub, key, out)


def _scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    out_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": out_meta,
            "spec": {"replicas": spec.get("replicas", 0)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items()))}}


def _expired(rv: int, compacted: int) -> dict[str, Any]:
    return {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                        "message": f"too old resource version: {rv} ({compacted})",
                                        "reason": "Expired", "code": 410}}


def _field_labels(rtype: ResourceType) -> dict[str, FieldGetter] | None:
    """The kind's own field selector labels, beyond ``metadata.name`` and ``metadata.namespace``."""
    return EVENT_FIELDS if rtype.group == "" and rtype.kind == "Event" else None


def _sort_key(obj: dict[str, Any]) -> tuple[str, str]:
    """The order the store lists objects in: namespace, then name."""
    meta = obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


def _spec_of(obj: dict[str, Any], rtype: ResourceType) -> dict[str, Any]:
    skip = {"metadata", "apiVersion", "kind"} | ({"status"} if rtype.has_status else set())
    return {k: v for k, v in obj.items() if k not in skip}


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def strip(obj: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in obj.items() if k != "apiVersion"}
        out["metadata"] = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
        return out

    return strip(old) == strip(new)
