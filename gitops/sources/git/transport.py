"""One Git remote over one transport: list its refs, fetch objects into a repository.

Wraps dulwich's clients (local, ``git://``, smart HTTP(S), SSH through OpenSSH) behind
two calls, :meth:`Remote.ls_refs` (the cheap "what does the remote have?", no objects)
and :meth:`Remote.fetch`. Every network wait is bounded by ``timeout``; TLS is verified
unless explicitly disabled; credentials go only to the remote's own origin. Every
failure leaves as a :mod:`gitops.errors` exception (see :mod:`.translate`). This module
never decides *what* to fetch and never writes outside the repository it is given.
"""

from __future__ import annotations

import os
import re
import select
import socket
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass
from typing import IO, Any

from dulwich.client import (
    GitClient,
    LocalGitClient,
    SSHGitClient,
    TCPGitClient,
    Urllib3HttpGitClient,
)
from dulwich.config import ConfigDict
from dulwich.errors import NotGitRepository
from dulwich.objects import ObjectID
from dulwich.protocol import (
    DEFAULT_GIT_PROTOCOL_VERSION_FETCH,
    DEFAULT_GIT_PROTOCOL_VERSION_SEND,
    Protocol,
)
from dulwich.refs import Ref
from dulwich.repo import Repo
from urllib3.util.retry import Retry

from gitops.errors import SourceError
from gitops.sources.git.credentials import Credentials
from gitops.sources.git.localrefs import read_local_refs
from gitops.sources.git.ssh import OpenSSHVendor
from gitops.sources.git.translate import translate_text, translating
from gitops.sources.git.url import GitURL

__all__ = ["RefMovedError", "Remote", "RemoteRefs"]

_PEELED = "^{}"
_ZERO = ObjectID(b"0" * 40)
_MOVED = re.compile(r"non-fast-forward|fetch first|stale|failed to lock|failed to update|"
                    r"cannot lock|reference already exists", re.IGNORECASE)


class RefMovedError(SourceError):
    """The remote's ref is not where the push expected it (someone pushed meanwhile)."""


@dataclass(frozen=True)
class RemoteRefs:
    """What a remote advertises: ``refs`` name -> object id (hex), annotated tags peeled."""

    refs: dict[str, str]
    #: tag name -> the commit an annotated tag points to
    peeled: dict[str, str]
    #: what HEAD points to (``refs/heads/main``), when the server says
    head: str | None
    #: the Git protocol version the server spoke (2 serves any reachable commit by SHA)
    protocol_version: int = 0

    def commit_of(self, name: str) -> str | None:
        """The commit a ref points to (annotated tags peeled), or None if absent."""
        return self.peeled.get(name, self.refs.get(name))


class Remote:
    """A remote repository; ``shown`` is its credential-free URL for messages."""

    def __init__(
        self,
        url: GitURL,
        credentials: Credentials,
        *,
        timeout: float,
        protocol_version: int | None = None,
        shown: str | None = None,
    ) -> None:
        self.url = url
        self.shown = shown or url.display
        self.timeout = timeout
        self.protocol_version = protocol_version
        self._creds = credentials
        self._client: GitClient | None = None
        self._ssh: OpenSSHVendor | None = None

    # -- public --------------------------------------------------------------------

    def ls_refs(self, prefixes: Sequence[str] | None = None) -> RemoteRefs:
        """Ask the remote for its refs (no objects). ``prefixes`` narrows the answer
        server-side where protocol v2 allows (callers still match names exactly)."""
        with self._translating("listing refs"):
            if self.url.transport == "file":
                local = read_local_refs(self.url.path, prefixes) if prefixes else None
                if local is not None:  # a local repository serves any commit it has
                    return RemoteRefs(*local, protocol_version=2)
                return self._ls_local()
            prefix = [p.encode() for p in prefixes] if prefixes is not None else None
            client = self._get_client()
            result = client.get_refs(
                self._path().encode(), protocol_version=self.protocol_version, ref_prefix=prefix
            )
            self._check_format(result.object_format)
            return _split(result.refs, result.symrefs, int(client.protocol_version or 0))

    def fetch(self, target: Any, wants: list[str], depth: int | None) -> int:
        """Fetch ``wants`` (hex object ids) and what they need into ``target`` (a dulwich
        repository, or a wrapper of one); returns the protocol version used."""
        wanted = [ObjectID(w.encode("ascii")) for w in wants]

        def determine_wants(
            refs: Mapping[Ref, ObjectID], depth: int | None = None
        ) -> list[ObjectID]:
            return list(wanted)

        with self._translating(f"fetching {', '.join(w[:12] for w in wants)}"):
            client = self._get_client()
            client.fetch(
                self._path(), target, determine_wants=determine_wants, depth=depth,
                protocol_version=self.protocol_version,
            )
            return int(getattr(client, "protocol_version", 0) or 0)

    def push(self, source: Any, ref: str, old: str | None, new: str) -> None:
        """Move the remote's ``ref`` from ``old`` (None: it must not exist) to ``new``,
        sending the objects ``source`` (a dulwich repository) has and the remote lacks.

        A compare-and-swap: raises RefMovedError when the remote's ref is elsewhere, before
        anything is sent, or when the server refuses because it moved meanwhile; any
        other refusal is a SourceError with the server's reason.
        """
        name = Ref(ref.encode())

        def update_refs(refs: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
            current = refs.get(name)
            if (current.decode() if current else None) != old:
                raise RefMovedError(self.shown, f"{ref} moved on the remote (now "
                                                f"{current.decode()[:12] if current else 'absent'})")
            return {name: ObjectID(new.encode("ascii"))}

        def generate_pack_data(have: Any, want: Any, **kwargs: Any) -> Any:
            return source.object_store.generate_pack_data(
                have, want, shallow=source.get_shallow(), progress=kwargs.get("progress"),
                ofs_delta=kwargs.get("ofs_delta", True))

        with self._translating(f"pushing {ref}"):
            result = self._get_client().send_pack(self._path().encode(), update_refs,
                                                  generate_pack_data)
        reason = (result.ref_status or {}).get(name)
        if reason:
            reason = translate_text(reason, self._creds.secrets())
            error = RefMovedError if _MOVED.search(reason) else SourceError
            raise error(self.shown, f"pushing {ref}: the server refused: {reason}")

    def close(self) -> None:
        """Release pooled connections and temporary key files. Idempotent."""
        if self._client is not None:
            with suppress(Exception):
                self._client.close()
            self._client = None
        if self._ssh is not None:
            self._ssh.close()
            self._ssh = None

    # -- clients -------------------------------------------------------------------

    def _translating(self, action: str) -> Any:
        return translating(self.shown, self._creds.secrets(), action, self.timeout)

    def _path(self) -> str:
        return self.url.path

    def _get_client(self) -> GitClient:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _make_client(self) -> GitClient:
        url, creds = self.url, self._creds
        if url.transport == "file":
            return LocalGitClient()
        if url.transport == "git":
            return _TimeoutTCPGitClient(url.host, url.port, timeout=self.timeout)
        if url.transport == "ssh":
            self._ssh = OpenSSHVendor(creds, self.timeout)
            return SSHGitClient(url.host, port=url.port, username=creds.username,
                                vendor=self._ssh)
        config = ConfigDict()
        if creds.ca_bundle is not None:
            config.set((b"http",), b"sslCAInfo", os.fspath(creds.ca_bundle).encode())
        if creds.insecure_skip_tls_verify:
            config.set((b"http",), b"sslVerify", False)
        if creds.bearer_token:
            config.set((b"http",), b"extraHeader", f"Authorization: Bearer {creds.bearer_token}")
        username = creds.username
        if creds.password and not username:
            username = "git"  # basic auth needs a name; token-as-password servers ignore it
        host = f"[{url.host}]" if ":" in url.host else url.host
        base = f"{url.transport}://{host}{f':{url.port}' if url.port else ''}{url.path}"
        client = Urllib3HttpGitClient(base, config=config, username=username,
                                      password=creds.password, timeout=self.timeout)
        # urllib3 retries a read timeout three times by default: one timeout is the bound
        pool_kw = getattr(client.pool_manager, "connection_pool_kw", None)
        if isinstance(pool_kw, dict):
            pool_kw["retries"] = Retry(total=None, connect=1, read=0, status=0, other=0,
                                       redirect=5)
        return client

    def _ls_local(self) -> RemoteRefs:
        try:
            repo = Repo(self.url.path)
        except NotGitRepository as exc:
            raise SourceError(self.shown, "no Git repository at this path") from exc
        with closing(repo):
            self._check_format(repo.object_format.name)
            refs = {k.decode(): v.decode() for k, v in repo.get_refs().items()}
            peeled: dict[str, str] = {}
            for name in refs:
                if name.startswith("refs/tags/"):
                    target = repo.get_peeled(Ref(name.encode())).decode()
                    if target != refs[name]:
                        peeled[name] = target
            head = repo.refs.get_symrefs().get(Ref(b"HEAD"))
            # a local repository serves any commit it has, like a protocol v2 server
            return RemoteRefs(refs, peeled, head.decode() if head else None, 2)

    def _check_format(self, object_format: str | None) -> None:
        if object_format not in (None, "sha1"):
            raise SourceError(self.shown, f"{object_format} repositories are not supported "
                                          "(only SHA-1 object names)")


def _split(
    refs: Mapping[Ref, ObjectID | None], symrefs: Mapping[Ref, Ref], protocol_version: int
) -> RemoteRefs:
    plain: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for name, sha in refs.items():
        if sha is None:
            continue  # unborn HEAD of an empty repository
        text = name.decode()
        if text.endswith(_PEELED):
            peeled[text[: -len(_PEELED)]] = sha.decode()
        else:
            plain[text] = sha.decode()
    head = symrefs.get(Ref(b"HEAD"))
    return RemoteRefs(plain, peeled, head.decode() if head else None, protocol_version)


class _TimeoutTCPGitClient(TCPGitClient):
    """``git://`` with a bounded connect and read time (dulwich's client waits forever)."""

    def __init__(self, host: str, port: int | None, *, timeout: float) -> None:
        super().__init__(host, port)
        self._timeout = timeout

    def _connect(
        self,
        cmd: bytes,
        path: str | bytes,
        protocol_version: int | None = None,
    ) -> tuple[Protocol, Callable[[], bool], IO[bytes] | None]:
        if isinstance(path, str):
            path = path.encode(self._remote_path_encoding)
        sock = socket.create_connection((self._host, self._port), timeout=self._timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rfile = sock.makefile("rb", -1)
        wfile = sock.makefile("wb", 0)

        def close() -> None:
            rfile.close()
            wfile.close()
            sock.close()

        def shutdown_write() -> None:
            wfile.flush()
            with suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

        def can_read() -> bool:
            return bool(select.select([sock], [], [], 0)[0])

        proto = Protocol(rfile.read, wfile.write, close,
                         report_activity=self._report_activity, shutdown_write=shutdown_write)
        if path.startswith(b"/~"):
            path = path[1:]
        if cmd == b"upload-pack":
            self.protocol_version = (
                DEFAULT_GIT_PROTOCOL_VERSION_FETCH if protocol_version is None
                else protocol_version
            )
        else:
            self.protocol_version = DEFAULT_GIT_PROTOCOL_VERSION_SEND
        version = b""
        if cmd == b"upload-pack" and self.protocol_version == 2:
            version = b"\0\0version=2\0"  # hidden behind two NULs, as git does
        proto.send_cmd(b"git-" + cmd, path, b"host=" + self._host.encode("ascii") + version)
        return proto, can_read, None
