"""Pure parts of the OCI source: URLs, options, credentials, challenges, manifests."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path, PurePosixPath

import pytest

from gitops.errors import AuthenticationError, InputError, InvalidURLError, SourceError
from gitops.sources.oci.auth import find_credentials, parse_challenge
from gitops.sources.oci.manifest import parse_manifest, select_layer
from gitops.sources.oci.options import FLUX_CONTENT, OCIOptions, load_options
from gitops.sources.oci.reference import is_loopback, parse_oci_url

DIGEST = "sha256:" + "ab" * 32


# -- URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "registry", "repository", "tag", "digest", "path", "semver"),
    [
        ("oci://127.0.0.1:5000/demo/app:v1", "127.0.0.1:5000", "demo/app", "v1", None, ".", None),
        ("oci://ghcr.io/org/app", "ghcr.io", "org/app", "latest", None, ".", None),
        (f"oci://ghcr.io/org/app@{DIGEST}", "ghcr.io", "org/app", None, DIGEST, ".", None),
        (f"oci://ghcr.io/org/app:v2@{DIGEST}", "ghcr.io", "org/app", "v2", DIGEST, ".", None),
        ("oci://localhost:5000/a/b/c:1.2.3#path=deploy/prod", "localhost:5000", "a/b/c",
         "1.2.3", None, "deploy/prod", None),
        ("oci://[::1]:5000/app#semver=>=1.0.0 <2.0.0&path=./x/", "[::1]:5000", "app", None,
         None, "x", ">=1.0.0 <2.0.0"),
        ("oci://user:pa%2Fss@registry.example.com/app:v1", "registry.example.com", "app", "v1",
         None, ".", None),
    ],
)
def test_urls_parse(url: str, registry: str, repository: str, tag: str | None,
                    digest: str | None, path: str, semver: str | None) -> None:
    ref, _, _ = parse_oci_url(url)
    assert (ref.registry, ref.repository, ref.tag, ref.digest, ref.path, ref.semver) == (
        registry, repository, tag, digest, PurePosixPath(path), semver)


def test_userinfo_is_taken_out_and_never_displayed() -> None:
    ref, user, password = parse_oci_url("oci://bob:pa%2Fss%40word@registry.example.com/app:v1")
    assert (user, password) == ("bob", "pa/ss@word")
    assert ref.display == "oci://registry.example.com/app:v1"
    assert "bob" not in ref.display and "pa" not in ref.display.split("//")[1].split("/")[0]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://ghcr.io/app", "starts with oci://"),
        ("oci:///app:v1", "missing registry host"),
        ("oci://ghcr.io/", "missing repository"),
        ("oci://ghcr.io/App:v1", "invalid repository"),
        ("oci://ghcr.io/app:-bad", "invalid tag"),
        ("oci://ghcr.io/app@sha256:abc", "invalid digest"),
        ("oci://ghcr.io/app@md5:" + "a" * 32, "invalid digest"),
        ("oci://ghcr.io/app:v1#semver=1.x", "semver= selects a tag"),
        ("oci://ghcr.io/app#semver=not a range", "invalid semver range"),
        ("oci://ghcr.io/app:v1#path=../etc", "leaves the artifact root"),
        ("oci://ghcr.io/app:v1#path=/etc", "relative to the artifact root"),
        ("oci://ghcr.io/app:v1#tag=v2", "unknown fragment option"),
        ("oci://ghcr.io/app:v1?x=1", "query string"),
        ("oci://ghcr.io:99999/app", "invalid host or port"),
        ("oci://bad_host!/app", "invalid registry host"),
    ],
)
def test_bad_urls_are_refused_naming_the_url(url: str, reason: str) -> None:
    with pytest.raises(InvalidURLError) as info:
        parse_oci_url(url)
    assert reason in str(info.value)


def test_a_bad_url_error_never_shows_the_password() -> None:
    with pytest.raises(InvalidURLError) as info:
        parse_oci_url("oci://bob:hunter2@ghcr.io/App:v1")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("localhost", True), ("::1", True),
     ("[::1]", True), ("registry.localhost", True), ("10.0.0.1", False),
     ("ghcr.io", False), ("localhost.example.com", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_docker_hub_names_map_to_its_api() -> None:
    ref, _, _ = parse_oci_url("oci://docker.io/alpine:3")
    assert (ref.api_registry, ref.api_repository) == ("registry-1.docker.io", "library/alpine")


# -- options -----------------------------------------------------------------------------


def test_unknown_or_invalid_options_are_refused_without_echoing_values() -> None:
    with pytest.raises(InputError, match="colour"):
        load_options("oci://x/app", {"colour": "hunter2"}, environ={})
    with pytest.raises(InputError, match="timeout") as info:
        load_options("oci://x/app", {"timeout": -1, "password": "hunter2"}, environ={})
    assert "hunter2" not in str(info.value)


def test_the_password_option_is_never_in_a_repr() -> None:
    options = load_options("oci://x/app", {"username": "u", "password": "hunter2"}, environ={})
    assert "hunter2" not in repr(options) and "hunter2" not in str(options)


def test_environment_fills_tls_options() -> None:
    options = load_options("oci://x/app", {}, environ={"GITOPS_OCI_CA_BUNDLE": "/ca.pem",
                                                       "GITOPS_OCI_INSECURE": "true"})
    assert options.ca_bundle == Path("/ca.pem") and options.insecure


# -- credentials -------------------------------------------------------------------------


def _docker_config(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


def test_credentials_precedence(tmp_path: Path) -> None:
    encoded = base64.b64encode(b"fromfile:filepass").decode()
    config = _docker_config(tmp_path, {"auths": {"reg:5000": {"auth": encoded}}})
    env = {"DOCKER_CONFIG": str(tmp_path)}
    opts = OCIOptions()

    def find(options: OCIOptions, user: str | None, password: str | None,
             environ: dict[str, str]) -> tuple[str, str, str] | None:
        found = find_credentials("reg:5000", options, user, password, display="oci://reg:5000/a",
                                 environ=environ)
        return None if found is None else (found.username, found.password, found.origin)

    assert find(opts, None, None, env) == ("fromfile", "filepass", f"docker config {config}")
    env_creds = {**env, "GITOPS_OCI_USERNAME": "envuser", "GITOPS_OCI_PASSWORD": "envpass"}
    assert find(opts, None, None, env_creds)[:2] == ("envuser", "envpass")  # type: ignore[index]
    assert find(opts, "urluser", "urlpass", env_creds)[:2] == ("urluser", "urlpass")  # type: ignore[index]
    explicit = OCIOptions(username="optuser", password="optpass")
    assert find(explicit, "urluser", "urlpass", env_creds)[:2] == ("optuser", "optpass")  # type: ignore[index]
    assert find(opts, None, None, {"DOCKER_CONFIG": str(tmp_path / "none")}) is None


def test_docker_config_keys_match_with_scheme_and_path(tmp_path: Path) -> None:
    _docker_config(tmp_path, {"auths": {
        "https://index.docker.io/v1/": {"username": "hub", "password": "hubpass"},
        "http://reg:5000/v2/": {"username": "r", "password": "rp", "identitytoken": "idt"},
    }})
    hub = find_credentials("docker.io", OCIOptions(docker_config=tmp_path), None, None,
                           display="oci://docker.io/a", environ={})
    reg = find_credentials("reg:5000", OCIOptions(docker_config=tmp_path / "config.json"),
                           None, None, display="oci://reg:5000/a", environ={})
    assert hub is not None and (hub.username, hub.password) == ("hub", "hubpass")
    assert reg is not None and reg.identity_token == "idt"
    assert "hubpass" not in repr(hub) and "idt" not in repr(reg)


def test_an_explicit_docker_config_must_exist_and_parse(tmp_path: Path) -> None:
    with pytest.raises(AuthenticationError, match="does not exist"):
        find_credentials("reg", OCIOptions(docker_config=tmp_path / "nope.json"), None, None,
                         display="oci://reg/a", environ={})
    bad = tmp_path / "bad.json"
    bad.write_text('{"auths": {"reg": {"auth": "hunter2!!"}}}')
    with pytest.raises(AuthenticationError, match="invalid 'auth' entry") as info:
        find_credentials("reg", OCIOptions(docker_config=bad), None, None,
                         display="oci://reg/a", environ={})
    assert "hunter2" not in str(info.value)


def test_credential_helpers_are_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fake"
    helper.write_text(
        "#!/bin/sh\nread server\n"
        'if [ "$server" = "reg:5000" ]; then\n'
        '  echo \'{"ServerURL": "reg:5000", "Username": "helped", "Secret": "helpersecret"}\'\n'
        "else echo 'credentials not found in native keychain'; exit 1; fi\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    _docker_config(tmp_path, {"credHelpers": {"reg:5000": "fake"}, "credsStore": "fake"})
    opts = OCIOptions(docker_config=tmp_path)
    found = find_credentials("reg:5000", opts, None, None, display="oci://reg:5000/a", environ={})
    assert found is not None and (found.username, found.password) == ("helped", "helpersecret")
    assert found.origin == "credential helper docker-credential-fake"
    assert find_credentials("other:1", opts, None, None, display="oci://other:1/a",
                            environ={}) is None


# -- challenges and manifests --------------------------------------------------------------


def test_challenges_parse() -> None:
    bearer = parse_challenge('Bearer realm="https://auth.example/token",service="reg",'
                             'scope="repository:a/b:pull,push"')
    assert bearer is not None and bearer.scheme == "bearer"
    assert dict(bearer.params) == {"realm": "https://auth.example/token", "service": "reg",
                                   "scope": "repository:a/b:pull,push"}
    basic = parse_challenge('Basic realm="Registry Realm"')
    assert basic is not None and basic.scheme == "basic"
    assert parse_challenge(None) is None and parse_challenge("Negotiate abc") is None


def _manifest(layers: list[dict[str, object]], **extra: object) -> bytes:
    return json.dumps({"schemaVersion": 2,
                       "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "x", "digest": DIGEST, "size": 2},
                       "layers": layers, **extra}).encode()


def test_layer_selection_by_media_type() -> None:
    flux = {"mediaType": FLUX_CONTENT, "digest": DIGEST, "size": 10}
    other = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": DIGEST,
             "size": 5}
    info = parse_manifest("oci://x/a", _manifest([other, flux]))
    assert select_layer("oci://x/a", info, FLUX_CONTENT).size == 10
    assert select_layer("oci://x/a", info, str(other["mediaType"])).size == 5
    with pytest.raises(SourceError, match=r"no layer of media type 'text/plain'.*it has"):
        select_layer("oci://x/a", info, "text/plain")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not json", "not valid JSON"),
        (json.dumps({"schemaVersion": 2, "manifests": []}).encode(), "index of several"),
        (_manifest([{"mediaType": "m", "digest": "sha512:abc", "size": 1}]), "unsupported digest"),
        (_manifest([{"mediaType": "m", "digest": DIGEST, "size": -1}]), "invalid size"),
        (_manifest([], schemaVersion=1), "schemaVersion"),
    ],
)
def test_bad_manifests_are_refused(content: bytes, reason: str) -> None:
    with pytest.raises(SourceError, match=reason):
        parse_manifest("oci://x/a", content)
