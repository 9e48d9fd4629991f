"""A small threaded HTTP server for the operator's endpoints (metrics, probes, webhooks).

:func:`serve` binds ``HOST:PORT`` (``:PORT`` means every interface, as Go reads it; port
0 picks a free one) and answers each request on a daemon thread from a table of routes:
``(method, path)`` to a handler taking a :class:`Request` and returning a
:class:`Response`. A route path ending in ``/`` is a prefix (``("POST", "/hooks/apps/")``).
The server, not the handlers, answers what no handler should see: an unknown path (404),
a known path with another method (405), a body over the cap (413) or without a length
(411), and a handler that raised (500, logged with the route but never with the request's
body or query, which may hold secrets). It writes no access log. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gitops.operator.metrics import OperatorMetrics

__all__ = [
    "MAX_BODY",
    "Handler",
    "Headers",
    "Request",
    "Response",
    "Routes",
    "Server",
    "json_response",
    "operator_routes",
    "parse_addr",
    "serve",
]

log = logging.getLogger(__name__)

#: Request bodies above this many bytes are refused with 413 before being read.
MAX_BODY = 1 << 20
_TEXT = "text/plain; charset=utf-8"
_IO_TIMEOUT = 10.0  # seconds a client may take to send its request


class Headers(Mapping[str, str]):
    """Request headers, looked up without regard to case; a repeated header keeps its first value."""

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in pairs:
            self._items.setdefault(name.lower(), (name, value))

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({sorted(self)!r})"  # names only: values may be tokens


@dataclass(frozen=True)
class Request:
    """One request as a handler sees it. ``path`` has no query; ``query`` is the raw rest."""

    method: str
    path: str
    headers: Headers
    body: bytes = field(repr=False)
    remote: str
    query: str = field(default="", repr=False)


@dataclass(frozen=True)
class Response:
    """What a handler answers; ``headers`` are extra response headers."""

    status: int
    body: bytes = b""
    content_type: str = _TEXT
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]
Routes = Mapping[tuple[str, str], Handler]


def json_response(status: int, document: Any,
                  headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response (``application/json``) of ``document``."""
    return Response(status, json.dumps(document, sort_keys=True).encode() + b"\n",
                    "application/json", dict(headers or {}))


def _text(status: int, text: str) -> Response:
    return Response(status, (text + "\n").encode())


def parse_addr(addr: str) -> tuple[str, int]:
    """``(host, port)`` from ``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (host ``""``: all).

    Raises ValueError naming the address when it has no valid port.
    """
    host, colon, port_text = addr.rpartition(":")
    if not colon or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"listen address {addr!r}: expected HOST:PORT, [IPV6]:PORT or :PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"listen address {addr!r}: write an IPv6 host in brackets, [::1]:PORT")
    return host, int(port_text)


class Server:
    """A running server: its ``url``, its ``port``, and :meth:`close`."""

    def __init__(self, httpd: _HTTPServer, thread: threading.Thread, name: str) -> None:
        self._httpd = httpd
        self._thread = thread
        self.name = name
        self.port: int = httpd.server_address[1]
        host = str(httpd.server_address[0])
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"  # every interface: loopback reaches it too
        self.host = host
        self.url = f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"
        self._closed = False

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting requests and release the port; requests in flight finish alone."""
        if self._closed:
            return
        self._closed = True
        self._httpd.stop()
        self._thread.join(timeout)
        self._httpd.server_close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Server(name={self.name!r}, url={self.url!r})"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], routes: Routes, name: str,
                 max_body: int, family: socket.AddressFamily) -> None:
        self.address_family = family
        self.routes = dict(routes)
        self.server_label = name
        self.max_body = max_body
        self._stopping = False
        self._wake_read, self._wake_write = os.pipe()
        try:
            super().__init__(address, _RequestHandler)
        except BaseException:
            os.close(self._wake_read)
            os.close(self._wake_write)
            raise
        # a connection reset between select() and accept() must not block the loop
        self.socket.setblocking(False)

    def serve_until_stopped(self) -> None:
        """Accept connections until :meth:`stop`; no polling (a pipe wakes the selector)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self and not self._stopping:
                        self.handle_request()  # readable: accepts at once

    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"x")

    def server_close(self) -> None:
        super().server_close()
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            with contextlib.suppress(OSError):  # also IPv4, as Go's ":PORT" does
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def serve(addr: str, routes: Routes, *, name: str, max_body: int = MAX_BODY) -> Server:
    """Start serving ``routes`` on ``addr`` in a daemon thread and return the :class:`Server`.

    ``name`` labels the server in logs and thread names (``"metrics"``, ``"webhooks"``).
    Raises ValueError for a malformed address and OSError (naming the address) when it
    cannot be bound.
    """
    for method, path in routes:
        if not path.startswith("/") or method != method.upper():
            raise ValueError(f"route ({method!r}, {path!r}): method in capitals, path from /")
    host, port = parse_addr(addr)
    family = socket.AF_INET
    if not host:
        if socket.has_dualstack_ipv6():
            host, family = "::", socket.AF_INET6
        else:
            host = "0.0.0.0"
    elif ":" in host:
        family = socket.AF_INET6
    try:
        httpd = _HTTPServer((host, port), routes, name, max_body, family)
    except OSError as exc:
        raise OSError(exc.errno, f"{name} server cannot listen on {addr}: {exc.strerror}") from exc
    thread = threading.Thread(target=httpd.serve_until_stopped, name=f"gitops-{name}-http",
                              daemon=True)
    thread.start()
    server = Server(httpd, thread, name)
    log.info("%s server listening on %s", name, server.url)
    return server


def _route(routes: Mapping[tuple[str, str], Handler], method: str,
           path: str) -> tuple[Handler | None, list[str]]:
    """The handler for ``method path`` and the methods the path allows (empty: unknown)."""
    matched = path if any(p == path for _, p in routes) else max(
        (p for _, p in routes if p.endswith("/") and path.startswith(p)), key=len, default=None)
    methods = {m for m, p in routes if p == matched}
    if "GET" in methods:
        methods.add("HEAD")
    wanted = "GET" if method == "HEAD" else method
    handler = routes.get((wanted, matched)) if matched is not None else None
    return handler, sorted(methods)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _HTTPServer
    timeout = _IO_TIMEOUT
    server_version = "gitops"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""

    def log_error(self, format: str, *args: Any) -> None:
        log.debug("%s server: " + format, self.server.server_label, *args)

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _handle(self) -> None:
        path, _, query = self.path.partition("?")
        path = path or "/"
        handler, allowed = _route(self.server.routes, self.command, path)
        if handler is None:
            if allowed:
                response = Response(405, b"method not allowed\n",
                                    headers={"Allow": ", ".join(allowed)})
            else:
                response = _text(404, "not found")
            self._send(response)
            return
        body = self._read_body()
        if isinstance(body, Response):
            self._send(body)
            return
        request = Request(self.command, path, Headers(self.headers.items()), body,
                          self.client_address[0], query)
        try:
            response = handler(request)
        except Exception:
            log.exception("%s server: handler for %s %s failed", self.server.server_label,
                          self.command, path)
            response = _text(500, "internal server error")
        self._send(response)

    def _read_body(self) -> bytes | Response:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _text(411, "a Content-Length is required")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            return _text(400, "invalid Content-Length")
        if length > self.server.max_body:
            return _text(413, f"request body over {self.server.max_body} bytes")
        try:
            body = self.rfile.read(length)
        except OSError:
            return _text(400, "request body could not be read")
        if len(body) != length:
            return _text(400, "request body shorter than its Content-Length")
        return body

    def _send(self, response: Response) -> None:
        # HTTP/1.0: one request per connection, so a request whose body was not read
        # (404, 405, 413) cannot confuse the next one
        try:
            self.send_response(response.status, _reason(response.status))
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except OSError:  # the client went away; nothing to tell it
            self.close_connection = True


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def operator_routes(
    metrics: OperatorMetrics, ready: Callable[[], bool]
) -> dict[tuple[str, str], Handler]:
    """GET ``/metrics`` (Prometheus text), ``/healthz`` (200 ``ok`` while serving) and
    ``/readyz`` (200 when ``ready()`` is true, else 503; a ``ready`` that raises is not ready)."""

    def scrape(_: Request) -> Response:
        body, content_type = metrics.exposition()
        return Response(200, body, content_type)

    def healthz(_: Request) -> Response:
        return _text(200, "ok")

    def readyz(_: Request) -> Response:
        try:
            is_ready = bool(ready())
        except Exception:
            log.exception("readiness check failed")
            is_ready = False
        return _text(200, "ok") if is_ready else _text(503, "not ready")

    return {("GET", "/metrics"): scrape, ("GET", "/healthz"): healthz, ("GET", "/readyz"): readyz}
