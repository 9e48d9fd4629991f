"""A real OCI registry on loopback for tests and benchmarks, with a token service.

:class:`LocalRegistry` runs the CNCF distribution registry (Debian's ``docker-registry``
binary, upstream's ``registry``) with a generated configuration: filesystem storage in
a folder of its own, an ephemeral port on 127.0.0.1, and one of anonymous access,
htpasswd basic auth or bearer tokens from :class:`TokenServer` (a loopback token
service issuing RS256 JWTs the registry verifies against the service's certificate),
optionally over TLS with a CA generated on the spot (:func:`make_ca`).

It never binds beyond loopback, never uses a system service, and stops what it started:
on ``stop()``, at interpreter exit, and (on Linux) when the starting process dies.
TLS and tokens need the ``cryptography`` package, htpasswd needs ``bcrypt`` (both in
the ``test`` extra).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import datetime as dt
import http.client
import json
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

__all__ = ["CA", "LocalRegistry", "TokenServer", "free_port", "make_ca", "registry_binary"]

Auth = Literal["none", "htpasswd", "token"]


def _die_with_parent() -> None:
    """In the child, on Linux: be sent SIGTERM if the process that started it dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def registry_binary() -> str | None:
    """The distribution registry's executable, if installed."""
    return shutil.which("docker-registry") or shutil.which("registry")


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (free when asked; start servers promptly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class CA:
    """A generated certificate authority and one server certificate it signed."""

    cert: Path  # the CA certificate (PEM): what clients trust
    server_cert: Path
    server_key: Path


def make_ca(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> CA:
    """A fresh CA in ``directory`` and a server certificate for ``hosts`` (IPs or names)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gitops test CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = CA(directory / "ca.crt", directory / "server.crt", directory / "server.key")
    paths.cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.server_key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return paths


# -- the token service ---------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class TokenServer:
    """A Docker token service on loopback: ``GET /token?service=&scope=`` with Basic auth.

    Grants every requested action to ``username``/``password``, or to a ``POST`` with the
    OAuth2 refresh-token grant carrying ``refresh_token`` (and nothing to anonymous callers
    unless ``anonymous_pull``); ``requests`` records each call's method, query and whether
    credentials came with it, for tests to inspect.
    """

    directory: Path
    username: str
    password: str
    service: str = "gitops-test-registry"
    issuer: str = "gitops-test-issuer"
    anonymous_pull: bool = False
    #: the identity (refresh) token the POST grant accepts, as in ``docker login``'s
    refresh_token: str = field(default_factory=lambda: "idt-" + secrets.token_hex(8),
                               repr=False)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    @property
    def cert(self) -> Path:
        return self.directory / "token.crt"

    def start(self) -> Self:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.directory.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.issuer)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
        service = self

        def sign(claims: dict[str, Any]) -> str:
            from cryptography.hazmat.primitives.asymmetric import padding

            header = {"typ": "JWT", "alg": "RS256", "x5c": [x5c]}
            signing_input = (_b64url(json.dumps(header).encode()) + "."
                             + _b64url(json.dumps(claims).encode()))
            signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
            return signing_input + "." + _b64url(signature)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                user = service._authenticated(self.headers.get("Authorization"))
                self._answer(parts.path, parse_qs(parts.query), user,
                             "Authorization" in self.headers)

            def do_POST(self) -> None:  # OAuth2 refresh-token grant (Docker identity tokens)
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                granted = form.get("grant_type") == ["refresh_token"] and \
                    secrets.compare_digest(form.get("refresh_token", [""])[0],
                                           service.refresh_token)
                self._answer(urlsplit(self.path).path, form,
                             service.username if granted else None, True)

            def _answer(self, path: str, query: dict[str, list[str]], user: str | None,
                        credentials: bool) -> None:
                service.requests.append({"method": self.command, "query": query,
                                         "authenticated": user is not None,
                                         "credentials": credentials})
                if path != "/token":
                    self.send_error(404)
                    return
                if user is None and credentials:
                    self.send_error(401, "bad credentials")
                    return
                access = []
                for scope in query.get("scope", []):
                    for item in scope.split():
                        kind, _, rest = item.partition(":")
                        repo, _, actions = rest.rpartition(":")
                        granted = actions.split(",") if user is not None else (
                            ["pull"] if service.anonymous_pull and "pull" in actions else [])
                        access.append({"type": kind, "name": repo, "actions": granted})
                now = int(time.time())
                token = sign({"iss": service.issuer, "sub": user or "", "aud": service.service,
                              "exp": now + 300, "nbf": now - 10, "iat": now,
                              "jti": uuid.uuid4().hex, "access": access})
                body = json.dumps({"token": token, "access_token": token,
                                   "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="gitops-token-server")
        self._thread.start()
        return self

    def _authenticated(self, header: str | None) -> str | None:
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if secrets.compare_digest(user, self.username) and \
                secrets.compare_digest(password, self.password):
            return user
        return None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# -- the registry ----------------------------------------------------------------------------


@dataclass
class LocalRegistry:
    """The distribution registry on ``127.0.0.1:<port>``; use as a context manager.

    ``auth``: ``"none"``, ``"htpasswd"`` (``username``/``password``) or ``"token"``
    (a :class:`TokenServer` is started with the same credentials); ``tls=True`` serves
    HTTPS with a certificate from a fresh :func:`make_ca` (``ca`` then holds its paths).
    """

    directory: Path
    auth: Auth = "none"
    tls: bool = False
    username: str = "gitops"
    password: str = field(default_factory=lambda: "pw-" + secrets.token_hex(8), repr=False)
    binary: str | None = None
    port: int = 0
    ca: CA | None = None
    token_server: TokenServer | None = None
    _process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``, as image references write it."""
        return f"127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.directory / "storage"

    def url(self, repository: str, tag: str | None = None) -> str:
        """``oci://127.0.0.1:<port>/<repository>[:<tag>]``."""
        return f"oci://{self.host}/{repository}" + (f":{tag}" if tag else "")

    def blob_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes (tests tamper with it)."""
        hexdigest = digest.removeprefix("sha256:")
        return (self.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest
                / "data")

    def start(self, timeout: float = 15.0) -> Self:
        binary = self.binary or registry_binary()
        if binary is None:
            raise RuntimeError("the distribution registry (docker-registry) is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)},
                        "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"secret": secrets.token_hex(16)},
        }
        if self.tls:
            self.ca = make_ca(self.directory / "tls")
            config["http"]["tls"] = {"certificate": str(self.ca.server_cert),
                                     "key": str(self.ca.server_key)}
        if self.auth == "htpasswd":
            import bcrypt

            hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
            (self.directory / "htpasswd").write_text(f"{self.username}:{hashed}\n")
            config["auth"] = {"htpasswd": {"realm": "gitops-test",
                                           "path": str(self.directory / "htpasswd")}}
        elif self.auth == "token":
            self.token_server = TokenServer(self.directory / "token", self.username,
                                            self.password).start()
            config["auth"] = {"token": {"realm": self.token_server.realm,
                                        "service": self.token_server.service,
                                        "issuer": self.token_server.issuer,
                                        "rootcertbundle": str(self.token_server.cert)}}
        for _ in range(3):  # a port taken between free_port() and bind: try another
            self.port = free_port()
            config["http"]["addr"] = self.host
            path = self.directory / "config.yml"
            path.write_text(json.dumps(config, indent=2))  # JSON is YAML
            log = open(self.directory / "registry.log", "wb")  # noqa: SIM115 - owned by Popen
            self._process = subprocess.Popen([binary, "serve", str(path)], stdout=log,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             preexec_fn=_die_with_parent)
            log.close()
            if self._wait_ready(timeout):
                atexit.register(self.stop)
                return self
            self._stop_process()
        self.stop()
        raise RuntimeError(f"registry did not start; see {self.directory / 'registry.log'}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self._probe() in (200, 401):
                    return True
            time.sleep(0.05)
        return False

    def _probe(self) -> int:
        conn: http.client.HTTPConnection
        if self.tls and self.ca is not None:
            context = ssl.create_default_context(cafile=str(self.ca.cert))
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=2, context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/v2/")
            return conn.getresponse().status
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop the registry (and its token service). Idempotent."""
        self._stop_process()
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None

    def _stop_process(self) -> None:
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

