"""Real Git servers on loopback, and repositories built by the real ``git``, for tests.

What the Git source's tests and ``bench/git_fetch.py`` run against, usable by anyone
testing code that talks to Git:

- :class:`WorkRepo` drives the ``git`` CLI in an isolated environment (no user or system
  config): files, commits (optionally GPG-signed), branches, tags, pushes to bare repos;
- :class:`GitDaemon` serves a directory of bare repositories over ``git://``;
- :class:`GitHTTPServer` bridges HTTP(S) to ``git http-backend`` (CGI): ``/git/...`` is
  anonymous, ``/private/...`` needs basic auth (or a bearer token);
- :class:`SSHServer` runs Debian's ``sshd`` as the current user with generated host and
  user keys, for ``git+ssh://``;
- :func:`make_gpg_key` makes a throwaway OpenPGP key in a private ``GNUPGHOME``.

Every server binds 127.0.0.1 on an ephemeral port, runs in its own process group and is
stopped by ``stop()`` (or a ``with`` block). This module is for tests and benchmarks:
never expose these servers, and never point them at data you care about.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "GitDaemon",
    "GitHTTPServer",
    "GpgKey",
    "SSHServer",
    "WorkRepo",
    "free_port",
    "git_env",
    "make_gpg_key",
    "make_tls_certificate",
]

_T0 = 1_700_000_000  # commit dates start here and advance one minute per commit


def git_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment where ``git`` reads no user or system configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=os.fspath(home), GIT_CONFIG_NOSYSTEM="1",
               GIT_CONFIG_GLOBAL=os.devnull, LC_ALL="C", GIT_TERMINAL_PROMPT="0")
    env.update(extra or {})
    return env


def free_port() -> int:
    """An ephemeral TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, proc: subprocess.Popen[bytes] | None, timeout: float = 10.0
                   ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {err.strip()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a server started with ``start_new_session=True``, and its children."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


class _Server:
    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        raise NotImplementedError


# -- repositories ------------------------------------------------------------------------


class WorkRepo:
    """A non-bare repository driven by the real ``git`` CLI, with deterministic dates."""

    def __init__(self, path: Path, *, home: Path, branch: str = "main",
                 gnupghome: Path | None = None) -> None:
        self.path = path
        self._extra = {"GNUPGHOME": os.fspath(gnupghome)} if gnupghome else {}
        self.env = git_env(home, self._extra)
        self._tick = 0
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", branch)
        self.git("config", "user.name", "Gitops Test")
        self.git("config", "user.email", "test@example.com")
        self.git("config", "commit.gpgsign", "false")
        self.git("config", "tag.gpgsign", "false")

    def git(self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None
            ) -> str:
        """Run ``git -C <repo> ARGS``; returns stdout; raises with stderr on failure."""
        done = subprocess.run(["git", "-C", os.fspath(self.path), *args], input=input,
                              capture_output=True, env={**self.env, **(env or {})}, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.decode().strip()}")
        return done.stdout.decode()

    def write(self, files: Mapping[str, str | bytes]) -> None:
        """Create or replace files (paths relative to the work tree)."""
        for relpath, content in files.items():
            target = self.path / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            target.write_bytes(content.encode() if isinstance(content, str) else content)

    def replace(self, files: Mapping[str, str | bytes]) -> None:
        """Make ``files`` the whole content of the work tree."""
        for entry in self.path.iterdir():
            if entry.name == ".git":
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        self.write(files)

    def symlink(self, relpath: str, target: str) -> None:
        link = self.path / relpath
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)

    def remove(self, *relpaths: str) -> None:
        for relpath in relpaths:
            self.git("rm", "-q", "-r", "--", relpath)

    def commit(self, message: str = "change", *, sign: str | None = None,
               allow_empty: bool = False) -> str:
        """Stage everything and commit (signed with key ``sign`` if given); returns the SHA."""
        self._tick += 1
        date = f"{_T0 + 60 * self._tick} +0000"
        self.git("add", "-A")
        args = ["commit", "-q", "-m", message]
        if allow_empty:
            args.append("--allow-empty")
        if sign:
            args = ["-c", "gpg.program=gpg", "-c", f"user.signingkey={sign}", *args, "-S"]
        self.git(*args, env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
        return self.head()

    def head(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", f"{rev}^{{commit}}").strip()

    def tag(self, name: str, *, annotated: bool = False, sign: str | None = None,
            rev: str = "HEAD") -> None:
        if sign:
            self.git("-c", "gpg.program=gpg", "tag", "-s", "-u", sign, "-m", f"tag {name}",
                     name, rev)
        elif annotated:
            self.git("tag", "-a", "-m", f"tag {name}", name, rev)
        else:
            self.git("tag", name, rev)

    def branch(self, name: str) -> None:
        """Create branch ``name`` at HEAD and switch to it."""
        self.git("switch", "-q", "-c", name)

    def switch(self, name: str) -> None:
        self.git("switch", "-q", name)

    def push(self, bare: Path) -> None:
        """Mirror every ref into the bare repository ``bare`` (created if missing)."""
        if not bare.exists():
            subprocess.run(["git", "init", "-q", "--bare", os.fspath(bare)], check=True,
                           env=self.env, capture_output=True)
        self.git("push", "-q", "--mirror", os.fspath(bare))
        head = self.git("symbolic-ref", "HEAD").strip()
        subprocess.run(["git", "-C", os.fspath(bare), "symbolic-ref", "HEAD", head],
                       check=True, env=self.env)


# -- git:// ------------------------------------------------------------------------------


class GitDaemon(_Server):
    """``git daemon`` serving every repository under ``root`` (``git://127.0.0.1:PORT/x.git``);
    ``receive_pack=True`` accepts pushes too."""

    def __init__(self, root: Path, *, receive_pack: bool = False) -> None:
        self.root = root
        self.receive_pack = receive_pack
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        for _ in range(5):
            self.port = free_port()
            self._proc = subprocess.Popen(
                ["git", "daemon", "--reuseaddr", "--export-all", "--informative-errors",
                 f"--base-path={self.root}", "--listen=127.0.0.1", f"--port={self.port}",
                 *(["--enable=receive-pack"] if self.receive_pack else []),
                 os.fspath(self.root)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                env=git_env(self.root),
            )
            try:
                _wait_for_port(self.port, self._proc)
                return self
            except RuntimeError:
                _stop(self._proc)  # the port was taken meanwhile: try another
        raise RuntimeError("git daemon did not start")

    def url(self, name: str) -> str:
        return f"git+git://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        _stop(self._proc)
        self._proc = None


# -- HTTP(S) -----------------------------------------------------------------------------


@dataclass
class _HTTPConfig:
    root: Path
    username: str
    password: str
    token: str
    requests: list[tuple[str, str, bool]]  # (method, path, asked for objects)


class _CGIBridge(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        config = self.server.config
        path, _, query = self.path.partition("?")
        body = self._body()
        config.requests.append((self.command, path,
                                b"command=fetch" in body or b"want " in body))
        if path.startswith("/private/"):
            if not self._authorized(config):
                self._reply(401, {"WWW-Authenticate": 'Basic realm="git"'}, b"")
                return
            path = path[len("/private"):]
        elif path.startswith("/git/"):
            path = path[len("/git"):]
        else:
            self._reply(404, {}, b"not found\n")
            return
        env = git_env(config.root, {
            "GIT_PROJECT_ROOT": os.fspath(config.root), "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1",
            "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
        })
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True,
                              timeout=60, check=False)
        head, _, content = done.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, content = done.stdout.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        self._reply(status, headers, content)

    def _authorized(self, config: _HTTPConfig) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return value == config.token
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == (config.username, config.password)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, headers: Mapping[str, str], content: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    config: _HTTPConfig


class GitHTTPServer(_Server):
    """Smart HTTP(S) through ``git http-backend``; ``/private/`` needs basic auth or a token.

    Give ``certificate`` and ``key`` (PEM files) to serve HTTPS. ``requests`` records
    ``(method, path, asked for objects)`` of every request, for tests to inspect.
    """

    def __init__(self, root: Path, *, username: str = "gitops", password: str = "s3cret",
                 token: str = "t0ken", certificate: Path | None = None,
                 key: Path | None = None) -> None:
        self.root = root
        self.username, self.password, self.token = username, password, token
        self.requests: list[tuple[str, str, bool]] = []
        self._tls = (certificate, key) if certificate and key else None
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def scheme(self) -> str:
        return "https" if self._tls else "http"

    def start(self) -> Self:
        server = _HTTPServer(("127.0.0.1", 0), _CGIBridge)
        server.config = _HTTPConfig(self.root, self.username, self.password, self.token,
                                    self.requests)
        if self._tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(os.fspath(self._tls[0]), os.fspath(self._tls[1]))
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="git-http",
                                        daemon=True)
        self._thread.start()
        return self

    def url(self, name: str, *, private: bool = False, userinfo: str = "") -> str:
        route = "private" if private else "git"
        at = f"{userinfo}@" if userinfo else ""
        return f"git+{self.scheme}://{at}127.0.0.1:{self.port}/{route}/{name}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def make_tls_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (``openssl``); returns ``(cert, key)``."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", os.fspath(key), "-out", os.fspath(cert), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


# -- SSH ---------------------------------------------------------------------------------


def _keygen(path: Path, passphrase: str = "") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", path.name,
                    "-f", os.fspath(path)], check=True, capture_output=True)
    return path


class SSHServer(_Server):
    """``sshd`` on 127.0.0.1 as the current user, accepting the generated user keys.

    ``user_key`` (no passphrase) and ``protected_key`` (passphrase ``passphrase``) may
    log in; ``stranger_key`` may not. ``known_hosts`` trusts the host key;
    ``other_known_hosts`` records a different key for the same address.
    """

    passphrase = "correct horse battery staple"

    def __init__(self, directory: Path, sshd: str = "/usr/sbin/sshd") -> None:
        self.dir = directory
        self.sshd = sshd
        self.user = _current_user()
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        self.host_key = _keygen(directory / "host_key")
        self.other_host_key = _keygen(directory / "other_host_key")
        self.user_key = _keygen(directory / "user_key")
        self.protected_key = _keygen(directory / "protected_key", self.passphrase)
        self.stranger_key = _keygen(directory / "stranger_key")
        authorized = directory / "authorized_keys"
        authorized.write_text("".join(
            Path(f"{key}.pub").read_text() for key in (self.user_key, self.protected_key)))
        os.chmod(authorized, 0o600)
        self.known_hosts = directory / "known_hosts"
        self.other_known_hosts = directory / "other_known_hosts"

    def start(self) -> Self:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        for _ in range(5):
            self.port = free_port()
            config = self.dir / "sshd_config"
            config.write_text("\n".join([
                f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
                f"AuthorizedKeysFile {self.dir / 'authorized_keys'}", f"PidFile {self.dir}/pid",
                "UsePAM no", "StrictModes no", "PasswordAuthentication no",
                "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password", "AcceptEnv GIT_PROTOCOL",
                f"AllowUsers {self.user}", "LogLevel ERROR", "MaxStartups 50", "",
            ]))
            self._proc = subprocess.Popen([self.sshd, "-D", "-e", "-f", os.fspath(config)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          start_new_session=True)
            try:
                _wait_for_port(self.port, self._proc)
            except RuntimeError:
                _stop(self._proc)
                continue
            for known, key in ((self.known_hosts, self.host_key),
                               (self.other_known_hosts, self.other_host_key)):
                public = Path(f"{key}.pub").read_text().split()
                known.write_text(f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n")
            return self
        raise RuntimeError("sshd did not start")

    def url(self, path: Path | str) -> str:
        return f"git+ssh://{self.user}@127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        _stop(self._proc)
        self._proc = None


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


# -- OpenPGP -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GpgKey:
    """A throwaway signing key: its keyring, fingerprint and armored public key."""

    home: Path
    fingerprint: str
    public: str

    def stop_agent(self) -> None:
        subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME":
                       os.fspath(self.home)}, check=False, capture_output=True)


def make_gpg_key(home: Path, name: str = "Gitops Test", email: str = "signer@example.com"
                 ) -> GpgKey:
    """Generate an unprotected ed25519 signing key in a new keyring at ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    env = {**os.environ, "GNUPGHOME": os.fspath(home)}

    def gpg(*args: str) -> str:
        done = subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback",
                               "--passphrase", "", *args], env=env, capture_output=True,
                              check=True)
        return done.stdout.decode()

    gpg("--quick-gen-key", f"{name} <{email}>", "ed25519", "sign", "never")
    listing = gpg("--list-keys", "--with-colons", email)
    fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                       if line.startswith("fpr:"))
    return GpgKey(home, fingerprint, gpg("--armor", "--export", fingerprint))
