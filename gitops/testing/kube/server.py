"""The HTTP layer: routes Kubernetes API URLs to :class:`~gitops.testing.kube.api.Api` verbs.

It parses paths (``/api/v1/namespaces/NS/configmaps/NAME``, ``/apis/GROUP/VERSION/...``,
the legacy ``/watch/`` prefix), bodies and query strings; serves discovery, ``/version`` and
OpenAPI; streams watches as chunked newline-delimited JSON; turns every
:class:`~gitops.testing.kube.status.StatusError` into a Status body; and counts requests
per verb and resource. It holds no API semantics of its own.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
import traceback
import uuid
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from gitops.testing.kube import openapi, tables
from gitops.testing.kube.api import Api
from gitops.testing.kube.discovery import ResourceType
from gitops.testing.kube.events import EventsV1View, is_events_v1
from gitops.testing.kube.options import Params
from gitops.testing.kube.status import StatusError, method_not_allowed

__all__ = ["EmulatorHTTPServer", "Handler", "RequestLog"]

log = logging.getLogger("gitops.testing.kube")

VERSION_INFO = {  # the shape of a 1.32 server's /version (the emulation* fields arrived in 1.33)
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-gitops-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}
AGGREGATED_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_NOT_FOUND = StatusError(404, "NotFound", "the server could not find the requested resource", {})
DEFAULT_WATCH_SECONDS = 1800


def _verb(method: str, name: str | None, watch: bool) -> str:
    """The API verb of a request on a resource (as discovery lists them)."""
    if method == "GET":
        return "watch" if watch else "get" if name is not None else "list"
    if method == "DELETE":
        return "delete" if name is not None else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


class RequestLog:
    """Thread-safe counters of requests by verb and by (verb, "group/resource")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.verbs: Counter[str] = Counter()
        self.resources: Counter[tuple[str, str]] = Counter()
        self.requests: list[tuple[str, str, str]] = []

    def record(self, method: str, path: str, query: str) -> None:
        with self._lock:
            self.requests.append((method, path, query))

    def count(self, verb: str, resource: str | None = None) -> None:
        with self._lock:
            self.verbs[verb] += 1
            if resource is not None:
                self.resources[(verb, resource)] += 1

    def reset(self) -> None:
        with self._lock:
            self.verbs.clear()
            self.resources.clear()
            self.requests.clear()

    def snapshot(self) -> tuple[Counter[str], Counter[tuple[str, str]], list[tuple[str, str, str]]]:
        with self._lock:
            return Counter(self.verbs), Counter(self.resources), list(self.requests)


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server carrying the API, the request log and a stop flag."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: Api, requests: RequestLog) -> None:
        super().__init__(address, Handler)
        self.api = api
        self.log = requests
        self.stopping = threading.Event()


class Handler(BaseHTTPRequestHandler):
    """One HTTP/1.1 connection to the emulator."""

    protocol_version = "HTTP/1.1"
    # buffered writes: headers and body leave in one send (handle_one_request flushes after
    # each request, watch streams flush every event), which halves the syscalls per request
    wbufsize = -1
    server: EmulatorHTTPServer
    server_version = "gitops-kube-emulator"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    # -- plumbing -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _json_body(self, raw: bytes) -> Any:
        """A JSON (or YAML) request body; 415 for protobuf and CBOR, which are not emulated."""
        if not raw.strip():
            return None
        content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        if content_type in ("application/yaml", "application/apply-patch+yaml"):
            try:
                return yaml.load(raw.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            except (UnicodeDecodeError, yaml.YAMLError) as exc:
                raise StatusError(400, "BadRequest", f"error decoding YAML: {exc}") from exc
        if content_type not in ("application/json", "*/*", ""):
            raise StatusError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type}; protobuf and CBOR are not emulated)")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise StatusError(400, "BadRequest", f"the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf ({exc})") from exc

    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        self.server.log.record(method, path, split.query)
        params: Params = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        raw = self._body()
        try:
            self._route(method, path, params, raw)
        except StatusError as exc:
            self._send(exc.code, exc.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            log.error("emulator failure on %s %s: %s", method, self.path, traceback.format_exc())
            err = StatusError(500, "InternalError", f"Internal error occurred: {exc}", {"causes": [{"message": str(exc)}]})
            self._send(500, err.body)

    # -- routing ---------------------------------------------------------------------------------

    def _route(self, method: str, path: str, params: Params, raw: bytes) -> None:
        parts = [p for p in path.split("/") if p]
        if path in ("/healthz", "/livez", "/readyz"):
            self._send(200, b"ok", "text/plain; charset=utf-8")
            return
        if parts[:1] not in (["api"], ["apis"], ["version"], ["openapi"]):
            self._page_not_found()
            return
        api = self.server.api
        if parts[0] == "api":
            group, rest = "", parts[1:]
        else:
            group, rest = (parts[1], parts[2:]) if len(parts) > 1 else ("", [])
        is_discovery = parts[0] in ("version", "openapi") or len(rest) <= 1
        if is_discovery:
            self.server.log.count("discovery")
        if parts == ["version"]:
            self._send(200, VERSION_INFO)
        elif parts[0] == "openapi":
            self._openapi(parts[1:])
        elif parts[0] == "version":
            self._page_not_found()
        elif len(parts) == 1:
            self._discovery_root(legacy=parts[0] == "api")
        elif not rest:
            doc = api.discovery.api_group(group)
            if doc is None:
                self._page_not_found()
            else:
                self._send(200, doc)
        elif not api.discovery.serves(group, rest[0]):
            self._page_not_found()
        elif len(rest) == 1:
            self._send(200, api.discovery.resource_list(group, rest[0]))
        else:
            self._resource(method, group, rest[0], rest[1:], params, raw)

    def _page_not_found(self) -> None:
        self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")

    def _discovery_root(self, *, legacy: bool) -> None:
        """``/api`` or ``/apis``: aggregated discovery (v2) when the client asks for it."""
        api = self.server.api
        accepted = [entry.replace(" ", "") + ";" for entry in (self.headers.get("Accept") or "").split(",")]
        if any("as=APIGroupDiscoveryList;" in entry and "v=v2;" in entry for entry in accepted):
            self._send(200, api.discovery.aggregated(legacy_core=legacy), AGGREGATED_TYPE)
            return
        self._send(200, api.discovery.api_versions() if legacy else api.discovery.api_group_list())

    def _openapi(self, rest: list[str]) -> None:
        api = self.server.api
        if rest == ["v3"]:
            self._send(200, openapi.root(api.discovery))
            return
        if rest[:1] == ["v3"] and len(rest) >= 3:
            if rest[1] == "api" and len(rest) == 3:
                doc = openapi.document_bytes(api.discovery, "", rest[2])
            elif rest[1] == "apis" and len(rest) == 4:
                doc = openapi.document_bytes(api.discovery, rest[2], rest[3])
            else:
                doc = None
            if doc is not None:
                self._send(200, doc)
                return
        self._page_not_found()

    def _resource(self, method: str, group: str, version: str, rest: list[str], params: Params, raw: bytes) -> None:
        api = self.server.api
        watch = False
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise _NOT_FOUND
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        rtype = api.discovery.lookup(group, version, plural)
        if rtype is None or (namespace is not None and not rtype.namespaced):
            raise _NOT_FOUND
        if rtype.namespaced and namespace is None and name is not None:
            raise _NOT_FOUND
        if sub and sub not in rtype.subresources:
            raise _NOT_FOUND
        resource = rtype.group_resource + (f"/{sub}" if sub else "")
        handler = self._handler(rtype)
        watch = watch or params.get("watch", "").lower() in ("1", "true")
        if not sub and _verb(method, name, watch) not in rtype.verbs:
            raise method_not_allowed()  # as for create-only reviews, or deletecollection of namespaces
        count = self.server.log.count
        if method == "GET" and name is None:
            if watch:
                count("watch", resource)
                self._watch(rtype, version, namespace, params)
                return
            count("list", resource)
            listing = handler.list(rtype, version, namespace, params)
            self._send(200, self._render_list(rtype, version, listing, params))
            return
        if sub == "scale" and name is not None and method in ("GET", "PUT", "PATCH"):
            count({"GET": "get", "PUT": "update", "PATCH": "patch"}[method], resource)
            if method == "GET":
                self._send(200, api.get_scale(rtype, namespace or "", name))
            else:
                content_type = self.headers.get("Content-Type") if method == "PATCH" else None
                self._send(200, api.write_scale(rtype, version, namespace or "", name, content_type, raw, params,
                                                self.headers.get("User-Agent") or ""))
            return
        if method == "GET" and watch and not sub:
            # the legacy /watch/.../NAME form: a watch of one object
            count("watch", resource)
            selector = f"metadata.name={name}"
            params["fieldSelector"] = f"{params['fieldSelector']},{selector}" if params.get("fieldSelector") else selector
            self._watch(rtype, version, namespace, params)
            return
        if method == "GET":
            count("get", resource)
            obj = handler.get(rtype, version, namespace or "", name or "")
            self._send(200, self._render_one(rtype, version, obj, params))
            return
        if method == "POST" and name is None:
            count("create", resource)
            if rtype.namespaced and namespace is None:
                raise method_not_allowed()
            body = self._json_body(raw)
            created = handler.create(rtype, version, namespace or "", body, params, self.headers.get("User-Agent") or "")
            self._send(201, created)
            return
        if method == "PUT" and name is not None:
            count("update", resource)
            body = self._json_body(raw)
            self._send(200, handler.update(rtype, version, namespace or "", name, body, params,
                                       self.headers.get("User-Agent") or "", sub))
            return
        if method == "PATCH" and name is not None:
            count("patch", resource)
            code, obj = handler.patch(rtype, version, namespace or "", name, self.headers.get("Content-Type") or "", raw,
                                  params, self.headers.get("User-Agent") or "", sub)
            self._send(code, obj)
            return
        if method == "DELETE" and name is not None and not sub:
            count("delete", resource)
            self._send(200, handler.delete(rtype, version, namespace or "", name, self._json_body(raw), params))
            return
        if method == "DELETE" and name is None:
            count("deletecollection", resource)
            self._send(200, handler.delete_collection(rtype, version, namespace, self._json_body(raw), params))
            return
        raise method_not_allowed()

    def _handler(self, rtype: ResourceType) -> Api | EventsV1View:
        """Who serves ``rtype``: the API itself, or (events.k8s.io Events, stored as core Events,
        as on a real server) a conversion in front of it."""
        api = self.server.api
        return EventsV1View(api, rtype) if is_events_v1(rtype) else api

    def _wants(self, what: str) -> bool:
        accept = (self.headers.get("Accept") or "").replace(" ", "")
        first = accept.split(",")[0] if accept else ""
        return f"as={what};" in first + ";" and "g=meta.k8s.io" in first

    def _render_list(self, rtype: ResourceType, version: str, listing: dict[str, Any], params: Params) -> dict[str, Any]:
        if self._wants("Table"):
            return tables.table(rtype, version, listing["items"], listing["metadata"], params.get("includeObject", "Metadata"))
        if self._wants("PartialObjectMetadataList"):
            return tables.partial_metadata_list(listing)
        return listing

    def _render_one(self, rtype: ResourceType, version: str, obj: dict[str, Any], params: Params) -> dict[str, Any]:
        if self._wants("Table"):
            return tables.table(rtype, version, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")}, params.get("includeObject", "Metadata"))
        if self._wants("PartialObjectMetadata"):
            return tables.partial_metadata(obj)
        return obj

    def _watch(self, rtype: ResourceType, version: str, namespace: str | None, params: Params) -> None:
        handler = self._handler(rtype)
        try:
            timeout = float(params.get("timeoutSeconds") or DEFAULT_WATCH_SECONDS)
        except ValueError:
            raise StatusError(400, "BadRequest", f"invalid timeoutSeconds {params.get('timeoutSeconds')!r}") from None
        until = _WatchEnd(self.server.stopping, self.connection)
        events = handler.watch(rtype, version, namespace, params, until, time.monotonic() + timeout)
        if self._wants("Table"):
            # as a real server does for `kubectl get -w`: each object printed as a one-row Table
            include = params.get("includeObject", "Metadata")
            events = (self._table_event(rtype, version, event, include) for event in events)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            for event in events:
                self._chunk(event)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    @staticmethod
    def _table_event(rtype: ResourceType, version: str, event: dict[str, Any], include: str) -> dict[str, Any]:
        if event["type"] not in ("ADDED", "MODIFIED", "DELETED"):
            return event
        obj = event["object"]
        meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
        return {"type": event["type"], "object": tables.table(rtype, version, [obj], meta, include)}

    def _chunk(self, event: dict[str, Any]) -> None:
        data = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class _WatchEnd(threading.Event):
    """Set once the server stops or the watch's client has hung up (looked at each time
    it is asked, about twice a second while a watch is idle): a real API server ends a
    watch when its connection closes, instead of holding a thread and a socket until
    its next event or its timeout."""

    def __init__(self, stopping: threading.Event, connection: socket.socket) -> None:
        super().__init__()
        self._stopping, self._connection = stopping, connection

    def is_set(self) -> bool:
        return self._stopping.is_set() or _hung_up(self._connection)


def _hung_up(connection: socket.socket) -> bool:
    """Whether the peer closed ``connection`` (readable, and nothing to read)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):  # reset, or closed here
        return True
