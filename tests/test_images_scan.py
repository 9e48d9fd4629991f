"""Scanning image repositories (gitops.images.scan, gitops.images.latest) on real registries.

Registries are Debian's ``docker-registry`` (distribution) on loopback: anonymous,
htpasswd (Basic) and bearer tokens, as the OCI source's tests start them. Tags are pushed
with the OCI client (and ``gitops push`` where the content must differ). Distribution 2.x
answers the whole tag list at once, whatever ``n`` says, so the multi-page tests put
:class:`PagingRelay` in front of the real registry: it passes every request through
and pages ``tags/list`` as the distribution spec describes (lexical order, ``n``,
``last``, ``Link: <…>; rel="next"``), counting what it receives.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from gitops.errors import (
    AuthenticationError,
    InvalidURLError,
    RevisionNotFoundError,
    SourceError,
)
from gitops.images.latest import NoMatchingTagError, latest_image
from gitops.images.scan import ImageRepository, TagCache, parse_image, scan_tags, tag_digest
from gitops.images.spec import ImagePolicy
from gitops.sources.oci import push
from gitops.sources.oci.client import RegistryClient
from gitops.sources.oci.manifest import Descriptor, build_manifest
from gitops.sources.oci.options import FLUX_CONFIG, OCI_MANIFEST, load_options
from gitops.sources.oci.reference import parse_oci_url
from gitops.sources.oci.session import RegistryUnavailableError
from gitops.testing.registry import LocalRegistry, free_port, registry_binary


def require(binary: str | None, name: str) -> str:
    """The binary; skipped locally when missing, a failure under CI (it must run there)."""
    if binary:
        return binary
    message = f"{name} is not installed (apt-get install docker-registry skopeo)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def start(tmp_path_factory: pytest.TempPathFactory, name: str, **kwargs: Any) -> LocalRegistry:
    binary = require(registry_binary(), "docker-registry")
    return LocalRegistry(tmp_path_factory.mktemp(name), binary=binary, **kwargs).start()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    reg = start(tmp_path_factory, "img-anon")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    reg = start(tmp_path_factory, "img-basic", auth="htpasswd", password="s3cr3t/P@ss:wörd#1")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    reg = start(tmp_path_factory, "img-token", auth="token", password="t0ken-Secret-42")
    yield reg
    reg.stop()


@pytest.fixture
def repo() -> str:
    return f"img/{uuid.uuid4().hex[:10]}"


def push_tags(registry: LocalRegistry, repo: str, tags: list[str], **creds: Any) -> str:
    """Store one small manifest under every tag (the OCI client's PUT); its digest."""
    ref, _, _ = parse_oci_url(registry.url(repo, "x"))
    config = b"{}"
    digest_of_config = "sha256:" + hashlib.sha256(config).hexdigest()
    client = RegistryClient(ref, load_options(ref.display, creds), display=ref.display,
                            credentials=lambda: _creds(creds), push=True)
    try:
        client.upload_blob(digest_of_config, len(config), config)
        manifest = build_manifest(Descriptor(FLUX_CONFIG, digest_of_config, len(config)),
                                  [Descriptor(FLUX_CONFIG, digest_of_config, len(config))], {})
        digest = ""
        for tag in tags:
            digest = client.put_manifest(tag, manifest, OCI_MANIFEST)
        return digest
    finally:
        client.close()


def _creds(creds: dict[str, Any]) -> Any:
    from gitops.sources.oci.auth import Credentials

    return Credentials(creds["username"], creds["password"], origin="options") if creds else None


class PagingRelay:
    """A loopback relay to a real registry that pages ``GET /v2/<name>/tags/list``.

    ``link=False`` leaves out the ``Link`` header (a registry that pages by ``last``
    only). ``paths`` records every request received.
    """

    def __init__(self, upstream: LocalRegistry, *, link: bool = True) -> None:
        self.upstream = upstream
        self.link = link
        self.paths: list[str] = []
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                relay.forward(self)

            do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        self.paths.append(handler.path)
        parts = urlsplit(handler.path)
        paging = handler.command == "GET" and parts.path.endswith("/tags/list")
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream.port, timeout=10)
        try:
            conn.request(handler.command, parts.path if paging else handler.path, body, headers)
            answer = conn.getresponse()
            data = answer.read()
            status = answer.status
            out = [(k, v) for k, v in answer.getheaders()
                   if k.lower() not in ("content-length", "connection", "transfer-encoding")]
        finally:
            conn.close()
        if paging and status == 200:
            data, link = self.page(parts.path, parts.query, data)
            if link:
                out.append(("Link", link))
        handler.send_response(status)
        for key, value in out:
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    def page(self, path: str, query: str, data: bytes) -> tuple[bytes, str | None]:
        answer = json.loads(data)
        params = parse_qs(query)
        tags = sorted(answer.get("tags") or [])
        if "last" in params:
            tags = [t for t in tags if t > params["last"][0]]
        size = int(params["n"][0]) if "n" in params else len(tags)
        page, rest = tags[:size], tags[size:]
        answer["tags"] = page
        link = None
        if rest and self.link:
            link = f'<{path}?n={size}&last={quote(page[-1], safe="")}>; rel="next"'
        return json.dumps(answer).encode(), link


@pytest.fixture
def relay(registry: LocalRegistry) -> Iterator[PagingRelay]:
    paging = PagingRelay(registry)
    yield paging
    paging.close()


TAGS = [f"1.{i}.0" for i in range(11)]


# -- listing -------------------------------------------------------------------------------


def test_tags_over_several_pages_follow_link(registry: LocalRegistry, relay: PagingRelay,
                                             repo: str) -> None:
    push_tags(registry, repo, TAGS)
    result = scan_tags(f"{relay.host}/{repo}", page_size=4)
    assert sorted(result.tags) == sorted(TAGS) and len(result.tags) == len(TAGS)
    assert result.round_trips == 3 == len(relay.paths)  # pages of 4, 4 and 3
    assert relay.paths[0] == f"/v2/{repo}/tags/list?n=4"
    assert "last=" in relay.paths[1] and not result.cached


def test_tags_over_pages_asked_with_last_when_there_is_no_link(
    registry: LocalRegistry, repo: str
) -> None:
    push_tags(registry, repo, TAGS[:8])
    paging = PagingRelay(registry, link=False)
    try:
        result = scan_tags(f"{paging.host}/{repo}", page_size=4)
    finally:
        paging.close()
    assert sorted(result.tags) == sorted(TAGS[:8])
    # 4, 4, then an empty page says the list ended
    assert paging.paths == [f"/v2/{repo}/tags/list?n=4", f"/v2/{repo}/tags/list?n=4&last=1.3.0",
                            f"/v2/{repo}/tags/list?n=4&last=1.7.0"]
    assert result.round_trips == 3


def test_the_debian_registry_answers_every_tag_in_one_round_trip(
    registry: LocalRegistry, repo: str
) -> None:
    push_tags(registry, repo, TAGS)
    result = scan_tags(f"{registry.host}/{repo}", page_size=4)
    assert sorted(result.tags) == sorted(TAGS)
    assert result.round_trips == 1


def test_exclusion_list(registry: LocalRegistry, repo: str) -> None:
    tags = ["1.0.0", "1.1.0", "sha256-" + "a" * 64 + ".sig", "dev-1", "dev-2"]
    push_tags(registry, repo, tags)
    image = f"{registry.host}/{repo}"
    assert sorted(scan_tags(image).tags) == sorted(tags)
    kept = scan_tags(image, exclude=[r"^.*\.sig$", "^dev-"]).tags
    assert sorted(kept) == ["1.0.0", "1.1.0"]
    with pytest.raises(InvalidURLError, match=f"oci://{registry.host}/{repo}: exclusion list "
                                              "entry 1: invalid regular expression"):
        scan_tags(image, exclude=["ok", "(open"])
    # the declared default excludes cosign signatures
    policy = make_policy(image, {"alphabetical": {"order": "asc"}})
    assert latest_image(policy).tag == "dev-2"
    assert latest_image(make_policy(image, {"alphabetical": {}}, exclusionList=[])).tag \
        == "sha256-" + "a" * 64 + ".sig"


def make_policy(image: str, policy: dict[str, Any], **spec: Any) -> ImagePolicy:
    return ImagePolicy.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ImagePolicy",
        "metadata": {"name": "app", "namespace": "shop"},
        "spec": {"image": image, "policy": policy, **spec},
    })


# -- auth ----------------------------------------------------------------------------------


def test_basic_auth_over_pages(basic_registry: LocalRegistry, repo: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    creds: dict[str, Any] = {"username": basic_registry.username,
                             "password": basic_registry.password}
    push_tags(basic_registry, repo, TAGS, **creds)
    paging = PagingRelay(basic_registry)
    image = f"{paging.host}/{repo}"
    try:
        result = scan_tags(image, page_size=5, **creds)
        assert sorted(result.tags) == sorted(TAGS)
        assert result.round_trips == 1 + 3  # the 401 challenge, then three pages
        with pytest.raises(AuthenticationError, match="requires authentication") as anonymous:
            scan_tags(image)
        with pytest.raises(AuthenticationError, match="refused the credentials") as wrong:
            scan_tags(image, username=creds["username"], password="not-" + creds["password"])
        monkeypatch.setenv("GITOPS_OCI_USERNAME", creds["username"])
        monkeypatch.setenv("GITOPS_OCI_PASSWORD", creds["password"])
        assert sorted(scan_tags(image, page_size=5).tags) == sorted(TAGS)
    finally:
        paging.close()
    for error in (anonymous.value, wrong.value):
        assert f"oci://{paging.host}/{repo}" in str(error)
        assert creds["password"] not in str(error) and "P@ss" not in str(error)


def test_credentials_from_a_docker_config(basic_registry: LocalRegistry, repo: str,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    user, password = basic_registry.username, basic_registry.password
    push_tags(basic_registry, repo, ["2.0.0"], username=user, password=password)
    (tmp_path / "config.json").write_text(json.dumps({"auths": {basic_registry.host: {
        "auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert scan_tags(f"{basic_registry.host}/{repo}").tags == ("2.0.0",)
    repository = ImageRepository(f"{basic_registry.host}/{repo}", password=password)
    assert password not in repr(repository)
    repository.close()


def test_bearer_token_reused_across_pages(token_registry: LocalRegistry, repo: str) -> None:
    server = token_registry.token_server
    assert server is not None
    creds: dict[str, Any] = {"username": token_registry.username,
                             "password": token_registry.password}
    push_tags(token_registry, repo, TAGS, **creds)
    paging = PagingRelay(token_registry)
    try:
        before = len(server.requests)
        result = scan_tags(f"{paging.host}/{repo}", page_size=4, **creds)
        with pytest.raises(AuthenticationError, match="refused anonymous access") as caught:
            scan_tags(f"{paging.host}/{repo}")
    finally:
        paging.close()
    assert sorted(result.tags) == sorted(TAGS)
    assert len(server.requests) == before + 2  # one token for the scan, one refused
    assert result.round_trips == 1 + 1 + 3  # challenge, token, three pages
    assert creds["password"] not in str(caught.value)


# -- the cache -----------------------------------------------------------------------------


def test_cache_saves_round_trips_until_it_expires_or_is_invalidated(
    registry: LocalRegistry, repo: str, tmp_path: Path
) -> None:
    now = [1000.0]
    cache = TagCache(tmp_path / "tags", max_age=30, clock=lambda: now[0])
    image = f"{registry.host}/{repo}"
    push_tags(registry, repo, ["1.0.0"])
    first = scan_tags(image, cache=cache)
    assert (first.tags, first.cached) == (("1.0.0",), False) and first.round_trips == 1
    second = scan_tags(image, cache=cache)
    assert (second.tags, second.cached, second.round_trips) == (("1.0.0",), True, 0)

    push_tags(registry, repo, ["1.1.0"])
    now[0] += 29  # within the cache's life: the list is the cached one
    assert scan_tags(image, cache=cache).tags == ("1.0.0",)
    now[0] += 1  # expired: the registry is asked again
    third = scan_tags(image, cache=cache)
    assert sorted(third.tags) == ["1.0.0", "1.1.0"] and not third.cached

    push_tags(registry, repo, ["1.2.0"])
    assert "1.2.0" not in scan_tags(image, cache=cache).tags
    cache.invalidate(image)
    assert "1.2.0" in scan_tags(image, cache=cache).tags
    # exclusions apply after the cache: the cache holds what the registry said
    assert scan_tags(image, cache=cache, exclude=["^1\\.[01]"]).tags == ("1.2.0",)


def test_cache_lives_under_gitops_cache_dir_per_repository(
    registry: LocalRegistry, repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITOPS_CACHE_DIR", str(tmp_path / "cache"))
    push_tags(registry, repo, ["1.0.0"])
    push_tags(registry, repo + "-b", ["9.9.9"])
    cache = TagCache()
    assert cache.directory == tmp_path / "cache" / "image-tags"
    scan_tags(f"{registry.host}/{repo}", cache=cache)
    scan_tags(f"{registry.host}/{repo}-b", cache=cache)
    files = sorted(cache.directory.iterdir())
    assert len(files) == 2
    assert scan_tags(f"{registry.host}/{repo}-b", cache=TagCache()).tags == ("9.9.9",)
    files[0].write_text("{not json")  # a damaged entry is a miss, not an error
    assert {scan_tags(f"{registry.host}/{r}", cache=cache).cached
            for r in (repo, repo + "-b")} == {True, False}


# -- digests and latest_image --------------------------------------------------------------


def test_digest_of_the_chosen_tag(registry: LocalRegistry, repo: str, tmp_path: Path) -> None:
    skopeo = require(shutil.which("skopeo"), "skopeo")
    digests = {}
    for version in ("1.0.0", "1.1.0", "2.0.0"):
        folder = tmp_path / version
        folder.mkdir()
        (folder / "app.yaml").write_text(f"version: {version}\n")
        digests[version] = push(folder, registry.url(repo, version)).digest
    image = f"{registry.host}/{repo}"
    chosen = latest_image(make_policy(image, {"semver": {"range": "^1.0"}}), with_digest=True)
    assert (chosen.policy, chosen.image, chosen.tag) == ("shop:app", image, "1.1.0")
    assert chosen.reference == f"{image}:1.1.0"
    assert chosen.digest == digests["1.1.0"]
    inspected = subprocess.run(
        [skopeo, "inspect", "--tls-verify=false", "--raw", f"docker://{image}:1.1.0"],
        check=True, capture_output=True, timeout=30).stdout
    assert chosen.digest == "sha256:" + hashlib.sha256(inspected).hexdigest()
    assert tag_digest(image, "2.0.0") == digests["2.0.0"]
    assert latest_image(make_policy(image, {"semver": {"range": "^1.0"}})).digest is None


def test_no_matching_tag_names_the_policy(registry: LocalRegistry, repo: str) -> None:
    push_tags(registry, repo, ["1.0.0", "latest"])
    policy = make_policy(f"{registry.host}/{repo}", {"semver": {"range": ">=2.0.0"}})
    with pytest.raises(NoMatchingTagError, match=r"ImagePolicy shop:app: no tag of "
                       rf"oci://{registry.host}/{repo} matches semver:>=2.0.0 \(2 tags"):
        latest_image(policy)


# -- errors --------------------------------------------------------------------------------


def test_unknown_repository_is_named(registry: LocalRegistry) -> None:
    with pytest.raises(RevisionNotFoundError) as caught:
        scan_tags(f"{registry.host}/img/absent")
    assert str(caught.value) == (f"oci://{registry.host}/img/absent: repository img/absent "
                                 f"not found on {registry.host}")
    with pytest.raises(RevisionNotFoundError, match="ImagePolicy shop:app: "):
        latest_image(make_policy(f"{registry.host}/img/absent", {"alphabetical": {}}))


def test_unreachable_registry_is_named_without_credentials() -> None:
    port = free_port()
    with pytest.raises(RegistryUnavailableError) as caught:
        scan_tags(f"127.0.0.1:{port}/team/app", username="bot", password="hunter2-secret",
                  timeout=2)
    assert f"oci://127.0.0.1:{port}/team/app" in str(caught.value)
    assert "unreachable" in str(caught.value) and "hunter2" not in str(caught.value)


@pytest.mark.parametrize("image", ["app", "host/app:1.0", "oci://host/app@sha256:" + "0" * 64,
                                   "host/app#path=x", "http://host/app", "host/App"])
def test_bad_image_names(image: str) -> None:
    with pytest.raises(InvalidURLError):
        parse_image(image)


def test_credentials_in_an_image_name_are_refused_unshown() -> None:
    with pytest.raises(InvalidURLError) as caught:
        parse_image("bot:hunter2-secret@host/app")
    assert "hunter2" not in str(caught.value) and "credentials" in str(caught.value)


def test_a_registry_that_answers_garbage_is_an_error_naming_the_image(
    tmp_path: Path
) -> None:
    class Garbage(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = b"<html>not json</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(SourceError, match=r"oci://127\.0\.0\.1:\d+/team/app: the "
                                              "registry's tag list is not valid JSON"):
            scan_tags(f"127.0.0.1:{server.server_address[1]}/team/app")
    finally:
        server.shutdown()
        server.server_close()


class HostileRegistry:
    """A loopback server answering every ``tags/list`` with ``answer(handler, n)`` (n: the
    request's number); records ``(path, Authorization)`` of each request."""

    def __init__(self, answer: Any) -> None:
        self.seen: list[tuple[str, str | None]] = []
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hostile.seen.append((self.path, self.headers.get("Authorization")))
                with contextlib.suppress(OSError):  # the client gave up
                    answer(self, len(hostile.seen))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def image(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}/team/app"

    def __enter__(self) -> HostileRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _send(handler: BaseHTTPRequestHandler, tags: list[str], link: str | None = None) -> None:
    body = json.dumps({"tags": tags}).encode()
    handler.send_response(200)
    if link is not None:
        handler.send_header("Link", link)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def test_a_registry_trickling_its_tag_list_times_out() -> None:
    # every byte comes before the read timeout, so only a deadline on the page stops it
    def trickle(handler: BaseHTTPRequestHandler, n: int) -> None:
        body = json.dumps({"tags": ["1.0.0"] * 100}).encode()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for byte in body:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.05)

    with HostileRegistry(trickle) as hostile:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailableError, match=r"oci://127\.0\.0\.1:\d+/team/app: "
                                                           r".*within 1s"):
            scan_tags(hostile.image, timeout=1)
        assert time.monotonic() - started < 5


def test_a_registry_whose_pages_never_end_is_given_up_within_a_deadline() -> None:
    # each page links to a next one with a new tag: without a deadline, 10,000 round trips
    def endless(handler: BaseHTTPRequestHandler, n: int) -> None:
        _send(handler, [f"t{n}"], f'</v2/team/app/tags/list?n=1&last=t{n}>; rel="next"')

    with HostileRegistry(endless) as hostile:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailableError, match="tag list"):
            scan_tags(hostile.image, timeout=0.2)
        assert time.monotonic() - started < 8


@pytest.mark.parametrize("link", [
    "<http://registry.example/v2/team/app/tags/list?n=1&last=a>",  # https -> http
    "<https://elsewhere.example/v2/team/app/tags/list?n=1&last=a>",
    "<https://registry.example:8443/v2/team/app/tags/list?n=1&last=a>",
])
def test_a_next_page_on_another_origin_is_refused(link: str) -> None:
    # the session sends its Authorization header with every request: a link downgrading
    # to plain HTTP on the same host would put the credentials on the wire in clear
    with ImageRepository("registry.example/team/app", username="bot",
                         password="hunter2-secret") as repo:
        session = repo._client.session
        with pytest.raises(SourceError, match="another host") as caught:
            session.next_page(f'{link}; rel="next"')
        assert "hunter2" not in str(caught.value)
        assert session.next_page('</v2/team/app/tags/list?n=1&last=a>; rel="next"') == \
            "https://registry.example/v2/team/app/tags/list?n=1&last=a"


def test_a_tag_list_larger_than_the_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # each page small, but new tags page after page: memory is bounded for the whole list
    import gitops.images.scan as scan_module

    monkeypatch.setattr(scan_module, "_MAX_LIST_BYTES", 20_000, raising=False)

    def growing(handler: BaseHTTPRequestHandler, n: int) -> None:
        _send(handler, [f"{n}.{i}.0" for i in range(100)],
              f'</v2/team/app/tags/list?n=100&last={n}.99.0>; rel="next"')

    with HostileRegistry(growing) as hostile:
        with pytest.raises(SourceError, match="tag list is larger than 20000 bytes"):
            scan_tags(hostile.image, timeout=5)
        assert len(hostile.seen) < 30


def test_a_list_cached_with_credentials_is_not_answered_to_a_scan_without(
    basic_registry: LocalRegistry, repo: str, tmp_path: Path
) -> None:
    # two tenants' policies share the tag cache: one without the credentials must not
    # learn the private repository's tags from the other's scan
    creds: dict[str, Any] = {"username": basic_registry.username,
                             "password": basic_registry.password}
    push_tags(basic_registry, repo, ["1.0.0", "1.1.0"], **creds)
    image = f"{basic_registry.host}/{repo}"
    cache = TagCache(tmp_path / "tags")
    assert not scan_tags(image, cache=cache, **creds).cached
    assert scan_tags(image, cache=cache, **creds).cached  # the same credentials: a hit
    with pytest.raises(AuthenticationError, match="requires authentication"):
        scan_tags(image, cache=cache)
    with pytest.raises(AuthenticationError, match="refused the credentials"):
        scan_tags(image, cache=cache, username=creds["username"], password="wrong")
    for file in (tmp_path / "tags").iterdir():  # the fingerprint, never the secret
        assert basic_registry.password not in file.name + file.read_text()
