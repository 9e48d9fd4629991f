"""Events: one resource served as core ``v1`` and as ``events.k8s.io/v1``, as on a real server.

A real server stores every Event once and converts it for each API: an Event posted to
``events.k8s.io/v1`` (``regarding``, ``note``, ``reportingController``) is listed by
``kubectl get events`` from ``/api/v1`` (``involvedObject``, ``message``,
``reportingComponent``), and the other way round. The emulator stores core ``v1`` Events
and serves ``events.k8s.io/v1`` through :class:`EventsV1View`, which converts request
bodies, patches, field selectors, responses and watch events at the edge. This module
also holds what the real server's Event registry adds: the defaults of a stored Event,
the validation of ``pkg/apis/core/validation/events.go``, and the Event field selectors.
It never stores anything itself.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import yaml

from gitops.testing.kube.status import bad_request, invalid
from gitops.testing.kube.validation import Cause, name_causes, qualified_name_causes

if TYPE_CHECKING:
    from gitops.testing.kube.api import Api
    from gitops.testing.kube.discovery import ResourceType
    from gitops.testing.kube.options import Params

__all__ = [
    "EVENT_FIELDS",
    "EventsV1View",
    "event_causes",
    "event_defaults",
    "events_v1_create_causes",
    "is_events_v1",
    "to_core",
    "to_events_v1",
]

#: events.k8s.io/v1 field -> core/v1 field, where the names differ
_V1_TO_CORE = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_CORE_TO_V1 = {core: v1 for v1, core in _V1_TO_CORE.items()}
#: events.k8s.io/v1 string fields with ``omitempty`` (core/v1 writes ``reportingComponent: ""``)
_V1_OMIT_EMPTY = ("action", "note", "reason", "reportingController", "reportingInstance", "type")
_NOTE_LIMIT = 1024
_LIMIT = 128


def is_events_v1(rtype: ResourceType) -> bool:
    return rtype.group == "events.k8s.io" and rtype.plural == "events"


def _api_version_to_core(value: Any) -> Any:
    return "v1" if isinstance(value, str) and value.startswith("events.k8s.io/") else value


def to_core(obj: dict[str, Any]) -> dict[str, Any]:
    """An events.k8s.io/v1 Event (or a merge patch of one) in core/v1 terms (a new dict)."""
    out = {_V1_TO_CORE.get(key, key): value for key, value in obj.items()}
    if "apiVersion" in out:
        out["apiVersion"] = _api_version_to_core(out["apiVersion"])
    return out


def to_events_v1(obj: dict[str, Any], *, typed_item: bool = False) -> dict[str, Any]:
    """A stored core/v1 Event as events.k8s.io/v1 serves it (``typed_item``: a list item, no kind)."""
    out: dict[str, Any] = {} if typed_item else {"apiVersion": "events.k8s.io/v1", "kind": "Event"}
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (key == "count" and not value):
            continue
        name = _CORE_TO_V1.get(key, key)
        if name in _V1_OMIT_EMPTY and value == "":
            continue
        out[name] = value
    return out


def event_defaults(obj: dict[str, Any]) -> None:
    """What a stored core/v1 Event always carries (Go structs and strings without ``omitempty``)."""
    obj.setdefault("involvedObject", {})
    obj.setdefault("source", {})
    for key in ("firstTimestamp", "lastTimestamp", "eventTime"):
        obj.setdefault(key, None)
    obj.setdefault("reportingComponent", "")
    obj.setdefault("reportingInstance", "")


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def event_causes(obj: dict[str, Any]) -> list[Cause]:
    """``legacyValidateEvent``: what every Event must satisfy, whichever API wrote it (core form)."""
    causes: list[Cause] = []
    namespace = _text(obj.get("metadata") or {}, "namespace")
    involved = obj.get("involvedObject")
    involved_ns = _text(involved, "namespace") if isinstance(involved, dict) else ""
    mismatch = ("FieldValueInvalid", "involvedObject.namespace", f'Invalid value: "{involved_ns}": does not match event.namespace')
    if not obj.get("eventTime"):
        # old-style Events: the namespaces must agree (cluster-scoped objects' Events live in "default")
        if (not involved_ns and namespace not in ("", "default")) or (involved_ns and namespace != involved_ns):
            causes.append(mismatch)
    else:
        if not involved_ns and namespace not in ("default", "kube-system"):
            causes.append(mismatch)
        controller = _text(obj, "reportingComponent")
        if not controller:
            causes.append(("FieldValueRequired", "reportingController", "Required value"))
        else:
            causes += qualified_name_causes(controller, "reportingController")
        for field, limit in (("reportingInstance", _LIMIT), ("action", _LIMIT), ("reason", _LIMIT)):
            value = _text(obj, field)
            if not value:
                causes.append(("FieldValueRequired", field, "Required value"))
            elif len(value) > limit:
                causes.append(("FieldValueInvalid", field, f'Invalid value: "": can have at most {limit} characters'))
        if len(_text(obj, "message")) > _NOTE_LIMIT:
            causes.append(("FieldValueInvalid", "message", f'Invalid value: "": can have at most {_NOTE_LIMIT} characters'))
    if namespace:
        causes += name_causes("Event", namespace, "namespace")  # a DNS-1123 subdomain
    return causes


def events_v1_create_causes(obj: dict[str, Any]) -> list[Cause]:
    """The strict checks of a create through events.k8s.io/v1 (``ValidateEventCreate``; v1 form)."""
    causes: list[Cause] = []
    series = obj.get("series")
    if isinstance(series, dict):
        if not isinstance(series.get("count"), int) or series["count"] < 2:
            causes.append(("FieldValueInvalid", "series.count", 'Invalid value: "": should be at least 2'))
        if not series.get("lastObservedTime"):
            causes.append(("FieldValueRequired", "series.lastObservedTime", "Required value"))
    if not obj.get("eventTime"):
        causes.append(("FieldValueRequired", "eventTime", "Required value"))
    if obj.get("type") not in ("Normal", "Warning"):
        causes.append(("FieldValueInvalid", "type", f'Invalid value: "": has invalid value: {obj.get("type") or ""}'))
    for v1, core in (("deprecatedFirstTimestamp", "firstTimestamp"), ("deprecatedLastTimestamp", "lastTimestamp"),
                     ("deprecatedCount", "count")):
        if obj.get(v1):
            causes.append(("FieldValueInvalid", core, 'Invalid value: "": needs to be unset'))
    source = obj.get("deprecatedSource")
    if isinstance(source, dict) and (source.get("component") or source.get("host")):
        causes.append(("FieldValueInvalid", "source", 'Invalid value: "": needs to be unset'))
    return causes


def _involved(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda obj: _text(obj.get("involvedObject") or {}, key)


#: the field selectors of core Events (``event.ToSelectableFields``), over the stored form
EVENT_FIELDS: dict[str, Callable[[dict[str, Any]], str]] = {
    **{f"involvedObject.{key}": _involved(key)
       for key in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
    "reason": lambda obj: _text(obj, "reason"),
    "reportingComponent": lambda obj: _text(obj, "reportingComponent"),
    "source": lambda obj: _text(obj.get("source") or {}, "component") or _text(obj, "reportingComponent"),
    "type": lambda obj: _text(obj, "type"),
}
#: events.k8s.io/v1 field selector labels -> the core labels they stand for
_V1_FIELD_LABELS = {
    **{f"regarding.{key}": f"involvedObject.{key}"
       for key in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
    "reason": "reason", "reportingController": "reportingComponent", "type": "type",
    "metadata.name": "metadata.name", "metadata.namespace": "metadata.namespace",
}
_SELECTOR_TERM = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(==|=|!=)(.*)$")


def _core_params(params: Params) -> Params:
    """Query parameters with an events.k8s.io field selector translated to core labels."""
    selector = params.get("fieldSelector")
    if not selector or not selector.strip():
        return params
    terms = []
    for term in selector.split(","):
        m = _SELECTOR_TERM.match(term)
        if m is None:
            return params  # the core parser reports the malformed selector
        if m.group(1) not in _V1_FIELD_LABELS:
            raise bad_request(f"field label not supported: {m.group(1)}")
        terms.append(f"{_V1_FIELD_LABELS[m.group(1)]}{m.group(2)}{m.group(3)}")
    return {**params, "fieldSelector": ",".join(terms)}


def _core_patch(content_type: str, raw: bytes) -> bytes:
    """A patch of an events.k8s.io/v1 Event as the same patch of its core/v1 form (raw left as it
    is when it does not decode: the core patch handler reports that)."""
    kind = content_type.split(";")[0].strip().lower()
    try:
        if kind == "application/apply-patch+yaml":
            doc = yaml.safe_load(raw.decode("utf-8") or "null")
        else:
            doc = json.loads(raw or b"null")
    except (ValueError, yaml.YAMLError):
        return raw
    if kind == "application/json-patch+json" and isinstance(doc, list):
        for op in doc:
            if not isinstance(op, dict):
                continue
            for key in ("path", "from"):
                if isinstance(op.get(key), str):
                    head, sep, rest = op[key].lstrip("/").partition("/")
                    op[key] = "/" + _V1_TO_CORE.get(head, head) + sep + rest
            if op.get("path") == "/apiVersion":
                op["value"] = _api_version_to_core(op.get("value"))
    elif isinstance(doc, dict):
        doc = to_core(doc)
    return json.dumps(doc).encode()


class EventsV1View:
    """``events.k8s.io/v1`` Events served from the core/v1 Events they are stored as.

    Same verbs and signatures as :class:`~gitops.testing.kube.api.Api` (the HTTP layer
    calls either); the ``rtype`` and ``version`` arguments are those of the request.
    """

    def __init__(self, api: Api, served: ResourceType) -> None:
        core = api.discovery.lookup("", "v1", "events")
        assert core is not None
        self.api, self.served, self.core = api, served, core

    def get(self, rtype: ResourceType, version: str, namespace: str, name: str) -> dict[str, Any]:
        return to_events_v1(self.api.get(self.core, "v1", namespace, name))

    def _listing(self, listing: dict[str, Any], version: str) -> dict[str, Any]:
        listing.update(kind="EventList", apiVersion=self.served.api_version(version))
        listing["items"] = [to_events_v1(item, typed_item=True) for item in listing["items"]]
        return listing

    def list(self, rtype: ResourceType, version: str, namespace: str | None, params: Params) -> dict[str, Any]:
        return self._listing(self.api.list(self.core, "v1", namespace, _core_params(params)), version)

    def watch(self, rtype: ResourceType, version: str, namespace: str | None, params: Params,
              stop: threading.Event, deadline: float) -> Iterator[dict[str, Any]]:
        events = self.api.watch(self.core, "v1", namespace, _core_params(params), stop, deadline)

        def converted() -> Iterator[dict[str, Any]]:
            for event in events:
                obj = event["object"]
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    event = {**event, "object": to_events_v1(obj)}
                elif event["type"] == "BOOKMARK":
                    event = {**event, "object": {**obj, "apiVersion": self.served.api_version(version)}}
                yield event

        return converted()

    def create(self, rtype: ResourceType, version: str, namespace: str, body: Any, params: Params,
               user_agent: str = "") -> dict[str, Any]:
        obj = self.api._typed(self.served, version, body, namespace)
        causes = event_causes(to_core(obj)) + events_v1_create_causes(obj)  # the legacy checks, then the strict ones
        if causes:
            raise invalid("Event", "events.k8s.io", str(obj["metadata"].get("name", "")), causes)
        return to_events_v1(self.api.create(self.core, "v1", namespace, to_core(obj), params, user_agent))

    def update(self, rtype: ResourceType, version: str, namespace: str, name: str, body: Any, params: Params,
               user_agent: str = "", subresource: str = "") -> dict[str, Any]:
        obj = self.api._typed(self.served, version, body, namespace)
        return to_events_v1(self.api.update(self.core, "v1", namespace, name, to_core(obj), params, user_agent, subresource))

    def patch(self, rtype: ResourceType, version: str, namespace: str, name: str, content_type: str, raw: bytes,
              params: Params, user_agent: str = "", subresource: str = "") -> tuple[int, dict[str, Any]]:
        core_patch = _core_patch(content_type, raw)
        if content_type.split(";")[0].strip().lower() == "application/apply-patch+yaml" and \
                not self.api.store.exists("", "events", namespace, name):
            self._check_applied_create(core_patch, name)  # server-side apply creating an Event: a create
        code, obj = self.api.patch(self.core, "v1", namespace, name, content_type, core_patch, params, user_agent, subresource)
        return code, to_events_v1(obj)

    @staticmethod
    def _check_applied_create(core_patch: bytes, name: str) -> None:
        try:
            config = json.loads(core_patch)
        except ValueError:
            return  # not decodable: the apply handler reports it
        if isinstance(config, dict):
            v1 = to_events_v1(config)
            causes = events_v1_create_causes(v1)
            if causes:
                raise invalid("Event", "events.k8s.io", name, causes)

    def delete(self, rtype: ResourceType, version: str, namespace: str, name: str, options: Any,
               params: Params) -> dict[str, Any]:
        return self.api.delete(self.core, "v1", namespace, name, options, params)

    def delete_collection(self, rtype: ResourceType, version: str, namespace: str | None, options: Any,
                          params: Params) -> dict[str, Any]:
        return self._listing(self.api.delete_collection(self.core, "v1", namespace, options, _core_params(params)), version)
