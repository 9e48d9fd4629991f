"""The OCI source and push against real distribution registries on loopback."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ocitools import make_tar, oci_layout, read_tree, sha256, upload, write_tree

import gitops
from gitops.cli import main
from gitops.errors import (
    AuthenticationError,
    InvalidURLError,
    RevisionNotFoundError,
    SourceError,
    VerificationError,
)
from gitops.sources.base import Source
from gitops.sources.oci import OCISource, RegistryUnavailableError, build_layer, push
from gitops.sources.oci import client as client_module
from gitops.testing.conformance import SourceConformance
from gitops.testing.registry import LocalRegistry

FILES = {
    "namespace.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n",
    "apps/config.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: demo\n"
        "data:\n  greeting: grüße 🚀\n"
    ),
    "apps/nested/deep.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\n  namespace: demo\n"
    ),
}
CREATED = "2024-01-02T03:04:05Z"


@pytest.fixture
def content(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "content", FILES)


# -- pull and push ---------------------------------------------------------------------------


def test_push_then_pull_roundtrip(anon_registry: LocalRegistry, repo: str, content: Path,
                                  cache_dir: Path) -> None:
    url = anon_registry.url(repo, "v1")
    pushed = push(content, url, revision="main@sha1:" + "a" * 40, source="https://git.example/x")
    with gitops.open_source(url, cache_dir=cache_dir) as source:
        assert isinstance(source, OCISource)
        revision = source.resolve()
        assert revision == f"v1@{pushed.digest}" == pushed.revision
        artifact = source.fetch(revision)
    assert read_tree(artifact.path) == {k: v.encode() for k, v in FILES.items()}
    assert artifact.digest == pushed.layer_digest
    assert artifact.url == url
    assert artifact.metadata["org.opencontainers.image.revision"] == "main@sha1:" + "a" * 40
    assert artifact.metadata["org.opencontainers.image.source"] == "https://git.example/x"
    assert "org.opencontainers.image.created" in artifact.metadata
    assert not (artifact.path / "namespace.yaml").stat().st_mode & 0o222  # read-only cache


def test_digest_pin_subpath_and_cache_reuse(anon_registry: LocalRegistry, repo: str,
                                            content: Path, cache_dir: Path) -> None:
    pushed = push(content, anon_registry.url(repo, "v1"))
    url = f"oci://{anon_registry.host}/{repo}@{pushed.digest}#path=apps"
    with OCISource(url, cache_dir=cache_dir) as source:
        assert source.resolve() == pushed.digest
        artifact = source.fetch(pushed.digest)
        assert read_tree(artifact.path) == {"config.yaml": FILES["apps/config.yaml"].encode(),
                                            "nested/deep.yaml": FILES["apps/nested/deep.yaml"]
                                            .encode()}
        assert source.fetch(f"v1@{pushed.digest}").path == artifact.path  # same cached tree
    with OCISource(anon_registry.url(repo, "v1") + "#path=nowhere", cache_dir=cache_dir) as src, \
            pytest.raises(RevisionNotFoundError, match="path nowhere"):
        src.fetch(src.resolve())


def test_a_repushed_tag_is_picked_up(anon_registry: LocalRegistry, repo: str, tmp_path: Path,
                                     cache_dir: Path) -> None:
    url = anon_registry.url(repo, "stable")
    first = write_tree(tmp_path / "one", {"a.yaml": "a: 1\n"})
    second = write_tree(tmp_path / "two", {"a.yaml": "a: 2\n"})
    with OCISource(url, cache_dir=cache_dir) as source:
        push(first, url)
        before = source.resolve()
        assert source.resolve() == before
        push(second, url)
        after = source.resolve()
        assert after != before
        assert read_tree(source.fetch(after).path) == {"a.yaml": b"a: 2\n"}
        assert read_tree(source.fetch(before).path) == {"a.yaml": b"a: 1\n"}  # by digest


def test_semver_over_paginated_tags(anon_registry: LocalRegistry, repo: str, content: Path,
                                    cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for tag in ("1.0.0", "v1.5.0", "1.2.0", "2.0.0", "latest", "1.9.0-rc.1"):
        push(content, anon_registry.url(repo, tag))
    monkeypatch.setattr(client_module, "TAG_PAGE_SIZE", 2)
    with OCISource(f"{anon_registry.url(repo)}#semver=^1.0", cache_dir=cache_dir) as source:
        assert sorted(source.tags()) == sorted(
            ["1.0.0", "v1.5.0", "1.2.0", "2.0.0", "latest", "1.9.0-rc.1"])
        assert source.resolve().startswith("v1.5.0@sha256:")
    with OCISource(f"{anon_registry.url(repo)}#semver=>=3", cache_dir=cache_dir) as source, \
            pytest.raises(RevisionNotFoundError, match="no tag matches semver '>=3'"):
        source.resolve()


def test_layer_media_type_selector(anon_registry: LocalRegistry, repo: str, cache_dir: Path
                                   ) -> None:
    standard = "application/vnd.oci.image.layer.v1.tar+gzip"
    url = anon_registry.url(repo, "v1")
    upload(url, make_tar([("a.yaml", b"a: 1\n")]), media_type=standard)
    with OCISource(url, cache_dir=cache_dir) as source:
        with pytest.raises(SourceError, match="no layer of media type") as info:
            source.fetch(source.resolve())
        assert standard in str(info.value) and url in str(info.value)
        assert not list((cache_dir / "artifacts").glob("*"))
    with OCISource(url, cache_dir=cache_dir, layer_media_type=standard) as source:
        assert read_tree(source.fetch(source.resolve()).path) == {"a.yaml": b"a: 1\n"}


# -- bad input: one clear error, nothing kept -----------------------------------------------


def _assert_refused(url: str, cache_dir: Path, error: type[Exception], match: str,
                    **options: Any) -> None:
    with OCISource(url, cache_dir=cache_dir, **options) as source, \
            pytest.raises(error, match=match) as info:
        source.fetch(source.resolve())
    assert url in str(info.value)
    assert not list((cache_dir / "artifacts").glob("*")), "a refused artifact was kept"


def test_a_tampered_blob_is_refused(anon_registry: LocalRegistry, repo: str, content: Path,
                                    cache_dir: Path) -> None:
    (content / "unique.yaml").write_text(f"unique: {repo}\n")  # blobs are shared by digest
    pushed = push(content, anon_registry.url(repo, "v1"))
    data = anon_registry.blob_path(pushed.layer_digest)
    tampered = bytearray(data.read_bytes())
    tampered[len(tampered) // 2] ^= 0x01
    data.write_bytes(bytes(tampered))
    _assert_refused(anon_registry.url(repo, "v1"), cache_dir, VerificationError,
                    "does not match its digest")


def _escaping_symlink() -> bytes:
    link = tarfile.TarInfo("passwd.yaml")
    link.type, link.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
    return make_tar([("ok.yaml", b"a: 1\n"), link])


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        (make_tar([("ok.yaml", b"a: 1\n"), ("../escape.yaml", b"x")]), "leaves the artifact"),
        (make_tar([("/etc/cron.d/evil", b"x")]), "absolute path"),
        (_escaping_symlink(), "symlink to '../../../../etc/passwd', outside"),
    ],
    ids=["dotdot", "absolute", "symlink"],
)
def test_unsafe_layers_are_refused(anon_registry: LocalRegistry, repo: str, cache_dir: Path,
                                   layer: bytes, match: str) -> None:
    url = anon_registry.url(repo, "v1")
    upload(url, layer)
    _assert_refused(url, cache_dir, VerificationError, match)


def test_a_gzip_bomb_is_refused(anon_registry: LocalRegistry, repo: str, cache_dir: Path) -> None:
    url = anon_registry.url(repo, "bomb")
    upload(url, make_tar([("zeros.yaml", bytes(16 << 20))], gzip_level=9))
    _assert_refused(url, cache_dir, VerificationError, "max_extracted_size",
                    max_extracted_size=1 << 20)


def test_a_layer_over_max_size_is_refused(anon_registry: LocalRegistry, repo: str,
                                          content: Path, cache_dir: Path) -> None:
    push(content, anon_registry.url(repo, "v1"))
    _assert_refused(anon_registry.url(repo, "v1"), cache_dir, VerificationError, "max_size",
                    max_size=64)


def test_unknown_tag_and_repository(anon_registry: LocalRegistry, repo: str, content: Path,
                                    cache_dir: Path) -> None:
    push(content, anon_registry.url(repo, "v1"))
    with OCISource(anon_registry.url(repo, "v404"), cache_dir=cache_dir) as source, \
            pytest.raises(RevisionNotFoundError, match="tag v404 not found in test/"):
        source.resolve()
    with OCISource(anon_registry.url(repo + "-nope", "v1"), cache_dir=cache_dir) as source, \
            pytest.raises(RevisionNotFoundError, match=r"repository test/\w+-nope not found on 127.0.0.1"):
        source.resolve()
    with OCISource(anon_registry.url(repo, "v1"), cache_dir=cache_dir) as source:
        with pytest.raises(RevisionNotFoundError, match="not an OCI revision"):
            source.fetch("v1")
        with pytest.raises(RevisionNotFoundError, match="not found"):
            source.fetch("sha256:" + "0" * 64)


def test_an_unreachable_registry_fails_fast(cache_dir: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with OCISource(f"oci://127.0.0.1:{port}/demo/app:v1", cache_dir=cache_dir) as source, \
            pytest.raises(RegistryUnavailableError, match="unreachable") as info:
        source.resolve()
    assert f"oci://127.0.0.1:{port}/demo/app:v1" in str(info.value)
    assert isinstance(info.value, gitops.TransientError)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_a_silent_registry_times_out_within_the_bound(silent_server: int, cache_dir: Path
                                                       ) -> None:
    started = time.monotonic()
    with OCISource(f"oci://127.0.0.1:{silent_server}/demo/app:v1", cache_dir=cache_dir,
                   timeout=0.5) as source, \
            pytest.raises(RegistryUnavailableError, match=r"did not answer within 0.5s"):
        source.resolve()
    assert time.monotonic() - started < 3


# -- auth ------------------------------------------------------------------------------------


def test_basic_auth(basic_registry: LocalRegistry, repo: str, content: Path,
                    cache_dir: Path) -> None:
    creds: dict[str, Any] = {"username": basic_registry.username,
                             "password": basic_registry.password}
    url = basic_registry.url(repo, "v1")
    with pytest.raises(AuthenticationError, match="requires authentication"):
        push(content, url)
    pushed = push(content, url, **creds)
    with OCISource(url, cache_dir=cache_dir, **creds) as source:
        assert source.resolve() == pushed.revision
        assert read_tree(source.fetch(pushed.revision).path)["namespace.yaml"]
    with OCISource(url, cache_dir=cache_dir, username="gitops", password="wrong") as source, \
            pytest.raises(AuthenticationError, match="refused the credentials from options"):
        source.resolve()
    with OCISource(url, cache_dir=cache_dir) as source, \
            pytest.raises(AuthenticationError, match="requires authentication"):
        source.resolve()


def test_credentials_from_url_env_and_docker_config(
    basic_registry: LocalRegistry, repo: str, content: Path, cache_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from urllib.parse import quote

    user, password = basic_registry.username, basic_registry.password
    url = basic_registry.url(repo, "v1")
    pushed = push(content, url, username=user, password=password)
    in_url = f"oci://{user}:{quote(password, safe='')}@{basic_registry.host}/{repo}:v1"
    with OCISource(in_url, cache_dir=cache_dir) as source:
        assert source.url == url
        assert source.resolve() == pushed.revision
    monkeypatch.setenv("GITOPS_OCI_USERNAME", user)
    monkeypatch.setenv("GITOPS_OCI_PASSWORD", password)
    with OCISource(url, cache_dir=cache_dir) as source:
        assert source.resolve() == pushed.revision
    monkeypatch.delenv("GITOPS_OCI_USERNAME")
    monkeypatch.delenv("GITOPS_OCI_PASSWORD")
    import base64

    config = tmp_path / "docker"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"auths": {basic_registry.host: {
        "auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    with OCISource(url, cache_dir=cache_dir) as source:
        assert source.resolve() == pushed.revision


def test_bearer_token_flow(token_registry: LocalRegistry, repo: str, content: Path,
                           cache_dir: Path) -> None:
    assert token_registry.token_server is not None
    requests = token_registry.token_server.requests
    creds: dict[str, Any] = {"username": token_registry.username,
                             "password": token_registry.password}
    url = token_registry.url(repo, "v1")
    with pytest.raises(AuthenticationError, match="refused anonymous access"):
        push(content, url)
    pushed = push(content, url, **creds)
    assert any("pull,push" in " ".join(r["query"].get("scope", [])) for r in requests)
    with OCISource(url, cache_dir=cache_dir, **creds) as source:
        before = len(requests)
        assert source.resolve() == pushed.revision
        assert source.resolve() == pushed.revision
        source.fetch(pushed.revision)
        assert len(requests) == before + 1, "the token must be reused, not fetched per request"
    with OCISource(url, cache_dir=cache_dir, username=creds["username"],
                   password="wrong") as source, \
            pytest.raises(AuthenticationError, match=r"token service .* refused the credentials"):
        source.resolve()


def test_identity_token_from_docker_config(token_registry: LocalRegistry, repo: str,
                                           content: Path, cache_dir: Path, tmp_path: Path
                                           ) -> None:
    server = token_registry.token_server
    assert server is not None
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {token_registry.host: {
        "username": token_registry.username, "identitytoken": server.refresh_token}}}))
    pushed = push(content, token_registry.url(repo, "v1"), docker_config=config)
    with OCISource(token_registry.url(repo, "v1"), cache_dir=cache_dir,
                   docker_config=config) as source:
        assert source.resolve() == pushed.revision
    assert server.requests[-1]["method"] == "POST"
    assert server.requests[-1]["query"]["scope"] == [f"repository:{repo}:pull"]
    config.write_text(json.dumps({"auths": {token_registry.host: {
        "identitytoken": "not-the-token"}}}))
    with OCISource(token_registry.url(repo, "v1"), cache_dir=cache_dir,
                   docker_config=config) as source, \
            pytest.raises(AuthenticationError, match=f"refused the credentials from docker "
                                                     f"config {config}"):
        source.resolve()


def test_tls_with_a_ca_bundle(tls_registry: LocalRegistry, repo: str, content: Path,
                              cache_dir: Path, tmp_path: Path) -> None:
    assert tls_registry.ca is not None
    tls: dict[str, Any] = {"ca_bundle": tls_registry.ca.cert, "plain_http": False}
    url = tls_registry.url(repo, "v1")
    pushed = push(content, url, **tls)
    with OCISource(url, cache_dir=cache_dir, **tls) as source:
        assert source.resolve() == pushed.revision
        assert read_tree(source.fetch(pushed.revision).path) == {
            k: v.encode() for k, v in FILES.items()}
    with OCISource(url, cache_dir=cache_dir, plain_http=False) as source, \
            pytest.raises(SourceError, match=r"TLS with .* failed.*ca_bundle"):
        source.resolve()
    with OCISource(url, cache_dir=cache_dir, plain_http=False, insecure=True) as source:
        assert source.resolve() == pushed.revision
    with OCISource(url, cache_dir=cache_dir) as source, \
            pytest.raises(SourceError, match="speaks HTTPS: pass plain_http=False"):
        source.resolve()  # loopback defaults to plain HTTP


def test_credentials_never_leak(basic_registry: LocalRegistry, token_registry: LocalRegistry,
                                repo: str, content: Path, cache_dir: Path,
                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    for registry in (basic_registry, token_registry):
        secret = registry.password
        good: dict[str, Any] = {"username": registry.username, "password": secret}
        url = registry.url(repo, "v1")
        pushed = push(content, url, **good)
        seen += [repr(pushed), json.dumps(pushed.to_dict())]
        with OCISource(url, cache_dir=cache_dir, **good) as source:
            artifact = source.fetch(source.resolve())
            seen += [repr(source), source.url, artifact.model_dump_json(), repr(source.options)]
        for bad in ({"username": registry.username, "password": secret + "x"},
                    {"username": secret, "password": secret}):
            with OCISource(url, cache_dir=cache_dir, **bad) as source, \
                    pytest.raises(AuthenticationError) as info:
                source.resolve()
            seen += [str(info.value), repr(info.value)]
        from urllib.parse import quote

        with pytest.raises(AuthenticationError) as info:
            OCISource(f"oci://u:{quote(secret, safe='')}@{registry.host}/{repo}:v404",
                      cache_dir=cache_dir).resolve()
        seen.append(str(info.value))
        for text in [*seen, caplog.text]:
            assert secret not in text
            assert secret[:-1] not in text


# -- skopeo, an independent client ------------------------------------------------------------


def test_an_artifact_pushed_by_skopeo_pulls_byte_identical(
    anon_registry: LocalRegistry, skopeo: str, repo: str, content: Path, tmp_path: Path,
    cache_dir: Path,
) -> None:
    with open(tmp_path / "layer.tgz", "w+b") as handle:
        build_layer(content, handle)
        handle.seek(0)
        layer = handle.read()
    digest = oci_layout(tmp_path / "layout", "v1", layer,
                        annotations={"org.opencontainers.image.revision": "v1/abc"})
    subprocess.run([skopeo, "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout'}:v1",
                    f"docker://{anon_registry.host}/{repo}:v1"], check=True, capture_output=True)
    with OCISource(anon_registry.url(repo, "v1"), cache_dir=cache_dir) as source:
        assert source.resolve() == f"v1@{digest}"
        artifact = source.fetch(f"v1@{digest}")
    assert artifact.metadata == {"org.opencontainers.image.revision": "v1/abc"}
    assert read_tree(artifact.path) == read_tree(content)
    # and a plain tar.gz made by GNU tar, with the OCI layer media type
    gnu = tmp_path / "gnu.tgz"
    subprocess.run(["tar", "-czf", str(gnu), "-C", str(content), "."], check=True)
    standard = "application/vnd.oci.image.layer.v1.tar+gzip"
    oci_layout(tmp_path / "layout2", "gnu", gnu.read_bytes(), media_type=standard,
               config_media_type="application/vnd.oci.image.config.v1+json")
    subprocess.run([skopeo, "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout2'}:gnu",
                    f"docker://{anon_registry.host}/{repo}:gnu"], check=True, capture_output=True)
    with OCISource(anon_registry.url(repo, "gnu"), cache_dir=cache_dir,
                   layer_media_type=standard) as source:
        assert read_tree(source.fetch(source.resolve()).path) == read_tree(content)


def test_our_push_is_readable_by_skopeo_and_reproducible(
    anon_registry: LocalRegistry, skopeo: str, repo: str, content: Path, tmp_path: Path,
) -> None:
    url = anon_registry.url(repo, "v1")
    first = push(content, url, revision="r1", created=CREATED)
    second = push(content, url, revision="r1", created=CREATED)
    assert (first.digest, first.layer_digest) == (second.digest, second.layer_digest)
    later = push(content, anon_registry.url(repo, "v2"))  # another time: same layer
    assert later.layer_digest == first.layer_digest
    raw = subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false",
                          f"docker://{anon_registry.host}/{repo}:v1"],
                         check=True, capture_output=True).stdout
    manifest = json.loads(raw)
    assert sha256(raw) == first.digest
    assert manifest["config"]["mediaType"] == "application/vnd.cncf.flux.config.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.cncf.flux.content.v1.tar+gzip"]
    assert manifest["annotations"] == {"org.opencontainers.image.created": CREATED,
                                       "org.opencontainers.image.revision": "r1"}
    layout = tmp_path / "copied"
    subprocess.run([skopeo, "copy", "--src-tls-verify=false",
                    f"docker://{anon_registry.host}/{repo}:v1", f"oci:{layout}:v1"],
                   check=True, capture_output=True)
    blob = layout / "blobs" / "sha256" / first.layer_digest.removeprefix("sha256:")
    with open(tmp_path / "local.tgz", "w+b") as handle:
        build_layer(content, handle)
        handle.seek(0)
        assert blob.read_bytes() == handle.read()
    out = tmp_path / "untarred"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(blob), "-C", str(out)], check=True)
    assert read_tree(out) == read_tree(content)


def test_push_leaves_out_hidden_and_ignored_files(anon_registry: LocalRegistry, repo: str,
                                                  tmp_path: Path, cache_dir: Path) -> None:
    tree = write_tree(tmp_path / "tree", {**FILES, ".git/config": "x", ".sourceignore": "*.md\n",
                                          "README.md": "docs"})
    pushed = push(tree, anon_registry.url(repo, "v1"))
    with OCISource(anon_registry.url(repo, "v1"), cache_dir=cache_dir) as source:
        assert read_tree(source.fetch(pushed.revision).path) == {
            k: v.encode() for k, v in FILES.items()}


def test_push_refuses_what_it_cannot_push(anon_registry: LocalRegistry, content: Path) -> None:
    digest = "sha256:" + "a" * 64
    for url in (f"oci://{anon_registry.host}/a@{digest}", f"oci://{anon_registry.host}/a:v1#path=x"):
        with pytest.raises(InvalidURLError, match="push needs"):
            push(content, url)
    with pytest.raises(gitops.InputError, match="not a directory"):
        push(content / "namespace.yaml", anon_registry.url("a", "v1"))


# -- the engine and the command line ----------------------------------------------------------


def test_reconciler_syncs_and_picks_up_a_repushed_tag(
    anon_registry: LocalRegistry, repo: str, tmp_path: Path, cache_dir: Path,
) -> None:
    url = anon_registry.url(repo, "v1")
    tree = write_tree(tmp_path / "src", FILES)
    pushed = push(tree, url)
    out = tmp_path / "out"
    with OCISource(url, cache_dir=cache_dir) as source, \
            gitops.Reconciler(source, f"dir:{out}", prune=True) as rec:
        result = rec.sync()
        assert result.succeeded and result.revision == pushed.revision
        assert rec.plan().in_sync
        (tree / "apps" / "config.yaml").write_text(
            FILES["apps/config.yaml"].replace("grüße", "hello"))
        repushed = push(tree, url)
        plan = rec.plan()
        assert plan.revision == repushed.revision and len(plan.changes) == 1
        assert rec.sync(plan).succeeded
        assert rec.plan().in_sync


def test_cli_push_and_sync(anon_registry: LocalRegistry, repo: str, content: Path, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                           ) -> None:
    monkeypatch.setenv("GITOPS_CACHE_DIR", str(tmp_path / "cache"))
    url = anon_registry.url(repo, "v1")
    assert main(["push", str(content), url, "--revision", "main@sha1:" + "b" * 40,
                 "--annotation", "team=platform", "-o", "json"]) == 0
    pushed = json.loads(capsys.readouterr().out)
    assert pushed["revision"].startswith("v1@sha256:")
    assert main(["sync", url, f"dir:{tmp_path / 'out'}", "-o", "json"]) == 0
    synced = json.loads(capsys.readouterr().out)
    assert synced["revision"] == pushed["revision"] and synced["succeeded"]
    assert main(["push", str(content), url, "--annotation", "novalue"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["sync", anon_registry.url(repo, "v9"), f"dir:{tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gitops: error: ") and "v9" in err and err.count("\n") == 1


# -- the conformance kit ---------------------------------------------------------------------


class TestOCISourceConformance(SourceConformance):
    @pytest.fixture
    def make_source(self, anon_registry: LocalRegistry, tmp_path: Path
                    ) -> Callable[[dict[str, str]], Source]:
        counter = iter(range(1000))

        def make(files: dict[str, str]) -> Source:
            n = next(counter)
            url = anon_registry.url(f"conformance/{uuid.uuid4().hex[:12]}", "v1")
            push(write_tree(tmp_path / f"src-{n}", files), url)
            return OCISource(url, cache_dir=tmp_path / "cache")

        return make

    @pytest.fixture
    def update_source(self, tmp_path: Path) -> Callable[[Source, dict[str, str]], None]:
        counter = iter(range(1000))

        def update(source: Source, files: dict[str, str]) -> None:
            push(write_tree(tmp_path / f"update-{next(counter)}", files), source.url)

        return update
