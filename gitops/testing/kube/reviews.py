"""Create-only kinds: access and token reviews are answered, a Binding binds; nothing is stored.

A real API server answers ``SubjectAccessReview`` and friends from its authorizer and
``TokenReview``/``SelfSubjectReview`` from its authenticator, returning the object with a
``status`` and storing nothing. The emulator has neither (docs: any token is accepted and
every request is allowed), so its answers say exactly that: allowed, authenticated as
:data:`USER`. A core ``Binding`` assigns a Pod to a Node (``spec.nodeName``), as the
scheduler does through ``pods/binding``. This module never speaks HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gitops.testing.kube.discovery import ResourceType
from gitops.testing.kube.jsondata import clone
from gitops.testing.kube.status import StatusError, invalid, not_found

__all__ = ["USER", "answer", "is_create_only"]

#: who every request is, for the reviews that ask
USER = {"username": "gitops-emulator", "groups": ["system:masters", "system:authenticated"]}
_ALLOWED = {"allowed": True, "reason": "the gitops emulator has no authorization: every request is allowed"}


def is_create_only(rtype: ResourceType) -> bool:
    """Kinds a server only answers (``verbs: [create]``): reviews and Binding."""
    return rtype.verbs == ("create",)


def _token_review(spec: dict[str, Any]) -> dict[str, Any]:
    if not spec.get("token"):
        return {"authenticated": False, "user": {}, "error": "token is empty"}
    return {"authenticated": True, "user": clone(USER), "audiences": list(spec.get("audiences") or [])}


_STATUS: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("authorization.k8s.io", "SubjectAccessReview"): lambda spec: dict(_ALLOWED),
    ("authorization.k8s.io", "LocalSubjectAccessReview"): lambda spec: dict(_ALLOWED),
    ("authorization.k8s.io", "SelfSubjectAccessReview"): lambda spec: dict(_ALLOWED),
    ("authorization.k8s.io", "SelfSubjectRulesReview"): lambda spec: {
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
        "incomplete": False,
    },
    ("authentication.k8s.io", "TokenReview"): _token_review,
    ("authentication.k8s.io", "SelfSubjectReview"): lambda spec: {"userInfo": clone(USER)},
}


def answer(rtype: ResourceType, obj: dict[str, Any], bind: Callable[[str, str, str], None]) -> dict[str, Any]:
    """The response to creating ``obj`` (already checked to be of ``rtype``).

    ``bind(namespace, pod, node)`` carries out a Binding. Raises StatusError for a
    Binding without a target node, and 405 for a create-only kind the emulator cannot
    answer (none among Kubernetes 1.32's).
    """
    if rtype.group == "" and rtype.kind == "Binding":
        meta = obj["metadata"]
        target = obj.get("target") or {}
        if not target.get("name"):
            raise invalid("Binding", "", str(meta.get("name", "")), [("FieldValueRequired", "target.name", "Required value")])
        if not meta.get("name"):
            raise not_found("", "pods", "")
        bind(str(meta.get("namespace", "")), str(meta["name"]), str(target["name"]))
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
    make = _STATUS.get((rtype.group, rtype.kind))
    if make is None:
        raise StatusError(405, "MethodNotAllowed", f"the gitops emulator does not answer {rtype.kind} requests", {})
    out = clone(obj)
    out.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    spec = out.get("spec")
    out["status"] = make(spec if isinstance(spec, dict) else {})
    return out
