"""DELETE, finalizers, and garbage collection (deletion propagation, namespaces, CRDs).

A real cluster finishes deletions asynchronously (garbage collector, namespace and CRD
controllers); the emulator runs the same steps synchronously inside the request, so a
client observes the end state at once while watches still see the intermediate events
(MODIFIED with ``deletionTimestamp``, then DELETED). Objects holding finalizers other than
the system ones stay until a client removes them, exactly as on a real server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitops.testing.kube.jsondata import clone
from gitops.testing.kube.options import Params, dry_run, now
from gitops.testing.kube.status import StatusError, conflict, invalid, not_found, success
from gitops.testing.kube.store import ObjectKey

if TYPE_CHECKING:
    from gitops.testing.kube.api import Api
    from gitops.testing.kube.discovery import ResourceType

__all__ = ["Deleter"]

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"
_POLICIES = ("Foreground", "Background", "Orphan")


class Deleter:
    """Deletes objects for an :class:`~gitops.testing.kube.api.Api` and settles what follows."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.store = api.store
        self.pending: set[ObjectKey] = set()

    def _type(self, group: str, plural: str) -> ResourceType | None:
        for rtype in self.api.discovery.types():
            if rtype.group == group and rtype.plural == plural:
                return rtype
        return None

    def delete(self, rtype: ResourceType, version: str, namespace: str, name: str, options: Any,
               params: Params) -> dict[str, Any]:
        """DELETE one object; returns the pending object, the deleted custom object, or a Status."""
        opts = options if isinstance(options, dict) else {}
        is_dry = dry_run(params) or opts.get("dryRun") == ["All"]
        policy = params.get("propagationPolicy") or opts.get("propagationPolicy")
        if policy is not None and policy not in _POLICIES:
            raise invalid("DeleteOptions", "meta.k8s.io", "", [("FieldValueNotSupported", "propagationPolicy", f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan", "nil"')])
        if opts.get("orphanDependents") is True and policy is None:
            policy = "Orphan"
        obj = self.store.get(rtype.group, rtype.plural, namespace, name)
        if obj is None:
            raise not_found(rtype.group, rtype.plural, name)
        meta = obj["metadata"]
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise conflict(rtype.group, rtype.plural, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise conflict(rtype.group, rtype.plural, name, f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, ResourceVersion in object meta: {meta.get('resourceVersion')}")
        is_namespace = rtype.group == "" and rtype.plural == "namespaces"
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Orphan" and ORPHAN not in finalizers:
            finalizers.append(ORPHAN)
        elif policy == "Foreground" and FOREGROUND not in finalizers:
            finalizers.append(FOREGROUND)
        if meta.get("deletionTimestamp"):
            if finalizers != list(meta.get("finalizers") or []) and not is_dry:
                meta["finalizers"] = finalizers
                obj = self.store.put(rtype.group, rtype.plural, obj)
                self.settle()
            return self.api.output(rtype, version, obj)
        if finalizers or is_namespace:
            meta["deletionTimestamp"] = now()
            meta["deletionGracePeriodSeconds"] = 0
            if finalizers:
                meta["finalizers"] = finalizers
            if is_namespace:
                obj.setdefault("status", {})["phase"] = "Terminating"
            if is_dry:
                return self.api.output(rtype, version, obj)
            stored = self.store.put(rtype.group, rtype.plural, obj)
            key: ObjectKey = (rtype.group, rtype.plural, namespace, name)
            self.pending.add(key)
            if is_namespace:
                for child in self.store.in_namespace(name):
                    self._delete_key(child, "Background")
            self.settle()
            return self.api.output(rtype, version, stored)
        if is_dry:
            return self.api.output(rtype, version, obj) if rtype.custom else success(rtype.group, rtype.plural, name, meta.get("uid", ""))
        gone = self.store.remove(rtype.group, rtype.plural, namespace, name)
        self.after_removal(rtype, gone)
        if rtype.custom:
            return self.api.output(rtype, version, gone or obj)
        return success(rtype.group, rtype.plural, name, meta.get("uid", ""))

    def _delete_key(self, key: ObjectKey, policy: str) -> None:
        rtype = self._type(key[0], key[1])
        if rtype is None:
            self.store.remove(*key)
            return
        try:
            self.delete(rtype, rtype.versions[0], key[2], key[3], {"propagationPolicy": policy}, {})
        except StatusError as exc:
            if exc.code != 404:
                raise

    def after_removal(self, rtype: ResourceType, gone: dict[str, Any] | None) -> None:
        """Background garbage collection once ``gone`` has left the store."""
        if gone is None:
            return
        meta = gone["metadata"]
        self.pending.discard((rtype.group, rtype.plural, meta.get("namespace", ""), meta["name"]))
        if rtype.group == "apiextensions.k8s.io" and rtype.plural == "customresourcedefinitions":
            self.api.discovery.remove_crd(meta["name"])
        uid = meta.get("uid", "")
        for key in self.store.dependents(uid):
            dependent = self.store.get(*key)
            if dependent is None:
                continue
            refs = dependent["metadata"].get("ownerReferences") or []
            others = [r for r in refs if r.get("uid") != uid and self._owner_exists(key, r)]
            if others:
                dependent["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                self.store.put(key[0], key[1], dependent)
            else:
                self._delete_key(key, "Background")
        self.settle()

    def _owner_exists(self, dependent: ObjectKey, ref: dict[str, Any]) -> bool:
        api_version = str(ref.get("apiVersion", ""))
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        rtype = self.api.discovery.by_kind(group, str(ref.get("kind", "")))
        if rtype is None:
            return False
        owner = self.store.get(rtype.group, rtype.plural, dependent[2] if rtype.namespaced else "", str(ref.get("name", "")))
        return owner is not None and owner["metadata"].get("uid") == ref.get("uid")

    def settle(self) -> None:
        """Finish every pending deletion whose conditions are met (repeat until stable)."""
        progress = True
        while progress:
            progress = False
            for key in sorted(self.pending):
                obj = self.store.get(*key)
                if obj is None:
                    self.pending.discard(key)
                    continue
                if self._advance(key, obj):
                    progress = True

    def _advance(self, key: ObjectKey, obj: dict[str, Any]) -> bool:
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        rtype = self._type(key[0], key[1])
        if rtype is None:
            return False
        uid = meta.get("uid", "")
        if ORPHAN in finalizers:
            for dep in self.store.dependents(uid):
                dependent = self.store.get(*dep)
                if dependent is not None:
                    refs = dependent["metadata"].get("ownerReferences") or []
                    dependent["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    if not dependent["metadata"]["ownerReferences"]:
                        del dependent["metadata"]["ownerReferences"]
                    self.store.put(dep[0], dep[1], dependent)
            return self._drop_finalizer(rtype, obj, ORPHAN)
        if FOREGROUND in finalizers:
            dependents = self.store.dependents(uid)
            for dep in dependents:
                target = self.store.get(*dep)
                if target is not None and not target["metadata"].get("deletionTimestamp"):
                    self._delete_key(dep, "Foreground")
            if not self.store.dependents(uid):
                return self._drop_finalizer(rtype, obj, FOREGROUND)
            return False
        if CRD_CLEANUP in finalizers and rtype.plural == "customresourcedefinitions":
            spec = obj.get("spec") or {}
            custom = self._type(str(spec.get("group", "")), str((spec.get("names") or {}).get("plural", "")))
            if custom is not None:
                for item in self.store.select(custom.group, custom.plural):
                    if not item["metadata"].get("deletionTimestamp"):
                        item_key = (custom.group, custom.plural, item["metadata"].get("namespace", ""), item["metadata"]["name"])
                        self._delete_key(item_key, "Background")
                if self.store.select(custom.group, custom.plural):
                    return False
            return self._drop_finalizer(rtype, obj, CRD_CLEANUP)
        if rtype.group == "" and rtype.plural == "namespaces":
            if finalizers or self.store.in_namespace(meta["name"]):
                return False
            gone = self.store.remove(*key)
            self.pending.discard(key)
            return gone is not None
        if not finalizers:
            gone = self.store.remove(*key)
            self.after_removal(rtype, gone)
            return True
        return False

    def _drop_finalizer(self, rtype: ResourceType, obj: dict[str, Any], finalizer: str) -> bool:
        obj = clone(obj)
        meta = obj["metadata"]
        meta["finalizers"] = [f for f in meta.get("finalizers") or [] if f != finalizer]
        key: ObjectKey = (rtype.group, rtype.plural, meta.get("namespace", ""), meta["name"])
        if not meta["finalizers"] and not (rtype.group == "" and rtype.plural == "namespaces"):
            gone = self.store.remove(*key)
            self.after_removal(rtype, gone)
            return True
        if not meta["finalizers"]:
            del meta["finalizers"]
        self.store.put(rtype.group, rtype.plural, obj)
        return True
