"""A registry that echoes credentials in its error bodies: no error or log line repeats them.

The fake registry on loopback answers every authenticated request with an error whose
body quotes the request's ``Authorization`` header, the decoded ``user:password``, the
bearer token it issued and a token of its own, in a Distribution JSON body (``message``
and ``detail``) or as plain text. Whatever reaches a gitops error or log keeps the
status and the registry's error code, never a credential, its base64 or a token.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gitops.errors import GitopsError, RevisionNotFoundError, SourceAuthenticationError
from gitops.sources.oci.auth import Credentials
from gitops.sources.oci.client import RegistryClient
from gitops.sources.oci.options import OCIOptions
from gitops.sources.oci.reference import parse_oci_url
from gitops.sources.oci.session import RegistryUnavailableError

USER, PASSWORD = "robot", "Hunter2-correct-horse"
REFRESH = "refresh-0123456789abcdefXYZ"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
ISSUED = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyb2JvdCIsImFjY2VzcyI6W119.c2lnbmF0dXJlLXNpZ24"
FOREIGN = "ya29.A0ARrdaM8vKq3ZxY7uTn1PqRsT2uV3wX4yZ5aB6cD7eF8gH9iJ0kL"  # some other token


@dataclass
class Echo:
    """What the fake registry does: how it authenticates, fails and words its bodies."""

    auth: str = "basic"  # or "bearer"
    status: int = 400
    body: str = "json"  # "json" (Distribution errors), "text", "token-error"
    seen: list[str] = field(default_factory=list)
    port: int = 0


def echo_body(echo: Echo, handler: BaseHTTPRequestHandler, form: str = "") -> bytes:
    header = handler.headers.get("Authorization", "")
    decoded = ""
    if header.startswith("Basic "):
        decoded = base64.b64decode(header[6:]).decode()
    echoed = f"Authorization: {header} user:password={decoded} form={form} other={FOREIGN}"
    if echo.body == "json":
        return json.dumps({"errors": [
            {"code": "DENIED", "message": f"requested access denied ({echoed})",
             "detail": {"header": header, "form": form}},
            {"code": "UNSUPPORTED", "message": f"token {ISSUED}"},
        ]}).encode()
    return f"<html><body>{echoed}</body></html>".encode()


def make_handler(echo: Echo) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/json" if body.startswith(b"{")
                             else "text/html")
            self.end_headers()
            self.wfile.write(body)

        def _token(self, form: str) -> None:
            echo.seen.append(self.headers.get("Authorization", "") + form)
            if echo.body == "token-error":
                self._send(echo.status, echo_body(Echo(body="json"), self, form))
            else:
                self._send(200, json.dumps({"token": ISSUED}).encode())

        def do_GET(self) -> None:
            if self.path.startswith("/token"):
                self._token("")
                return
            header = self.headers.get("Authorization", "")
            expected = f"Bearer {ISSUED}" if echo.auth == "bearer" else f"Basic {BASIC}"
            if header != expected:
                host = f"127.0.0.1:{echo.port}"
                challenge = (f'Bearer realm="http://{host}/token",service="fake"'
                             if echo.auth == "bearer" else 'Basic realm="fake"')
                self._send(401, b"", {"WWW-Authenticate": challenge})
                return
            self._send(echo.status, echo_body(echo, self))

        do_HEAD = do_GET

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = self.rfile.read(length).decode()
            if self.path.startswith("/token"):
                self._token(form)
                return
            self._send(echo.status, echo_body(echo, self, form))

    return Handler


@pytest.fixture
def registry() -> Iterator[tuple[Echo, int]]:
    echo = Echo()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(echo))
    echo.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield echo, echo.port
    finally:
        server.shutdown()
        server.server_close()


def client(port: int, creds: Credentials) -> RegistryClient:
    ref = parse_oci_url(f"oci://127.0.0.1:{port}/team/app:v1")[0]
    return RegistryClient(ref, OCIOptions(timeout=5), display=ref.display,
                          credentials=lambda: creds)


SECRETS = [PASSWORD, REFRESH, BASIC, BASIC.rstrip("="), ISSUED, FOREIGN,
           base64.b64encode(PASSWORD.encode()).decode(), f"{USER}:{PASSWORD}",
           ISSUED.split(".")[1], ISSUED.split(".")[2]]


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (secret, text)


def failure(port: int, creds: Credentials, call: str) -> GitopsError:
    registry_client = client(port, creds)
    try:
        if call == "manifest":
            registry_client.get_manifest("v1")
        elif call == "tags":
            registry_client.list_tags()
        else:
            registry_client.upload_blob("sha256:" + "0" * 64, 1, b"x")
    except GitopsError as exc:
        return exc
    finally:
        registry_client.close()
    raise AssertionError("the registry's error was not raised")


@pytest.mark.parametrize("auth", ["basic", "bearer"])
@pytest.mark.parametrize("status", [400, 404, 500, 401, 403])
@pytest.mark.parametrize("body", ["json", "text"])
@pytest.mark.parametrize("call", ["manifest", "upload"])
def test_errors_from_echoing_bodies_never_hold_credentials(
    registry: tuple[Echo, int], auth: str, status: int, body: str, call: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    echo, port = registry
    echo.auth, echo.status, echo.body = auth, status, body
    caplog.set_level(logging.DEBUG)
    exc = failure(port, Credentials(USER, PASSWORD, origin="options"), call)
    shown = "".join(traceback.format_exception(exc)) + repr(exc)
    assert_clean(shown)
    assert_clean(caplog.text)
    assert echo.seen or auth == "basic"  # the bearer flow did run
    if status in (401, 403):
        assert isinstance(exc, SourceAuthenticationError)
    elif status == 500:
        assert isinstance(exc, RegistryUnavailableError) and "HTTP 500" in str(exc)
    elif status == 404 and call != "upload":
        assert isinstance(exc, RevisionNotFoundError)
    else:
        assert f"HTTP {status}" in str(exc)
    if body == "json" and status in (400, 500) and call != "upload":  # HEAD: no body
        # the registry's code and its words are kept, the echoed parts masked
        assert "DENIED: requested access denied (Authorization: Basic ***" in str(exc) \
            or "DENIED: requested access denied (Authorization: Bearer ***" in str(exc)
        assert "UNSUPPORTED: token ***" in str(exc)
    if body == "text":
        assert "html" not in str(exc).lower(), "a non-JSON body is not quoted"


@pytest.mark.parametrize("status", [400, 401, 500])
@pytest.mark.parametrize("identity", [False, True])
def test_token_service_errors_never_hold_credentials(
    registry: tuple[Echo, int], status: int, identity: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    echo, port = registry
    echo.auth, echo.status, echo.body = "bearer", status, "token-error"
    caplog.set_level(logging.DEBUG)
    creds = Credentials("", "", REFRESH, "docker config") if identity else \
        Credentials(USER, PASSWORD, origin="options")
    exc = failure(port, creds, "manifest")
    assert_clean("".join(traceback.format_exception(exc)) + repr(exc))
    assert_clean(caplog.text)
    assert "token service http://127.0.0.1:" in str(exc)
    assert (REFRESH in echo.seen[0]) == identity  # the echo had it to give away
