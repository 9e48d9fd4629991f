"""Credentials and trust over real HTTP(S) and SSH servers; secrets never shown."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

import pytest
from gitrepos import Fixture

from gitops.errors import AuthenticationError, GitopsError, SourceError
from gitops.sources.git import GitSource
from gitops.testing.gitserver import GitHTTPServer, SSHServer


def assert_secret_free(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text and quote(secret, safe="") not in text, text


def resolve_error(url: str, cache: Path, **options: object) -> GitopsError:
    with pytest.raises(GitopsError) as info, GitSource(url, cache_dir=cache,
                                                        **options) as source:
        source.fetch(source.resolve())
    return info.value


# -- HTTP basic auth and tokens ----------------------------------------------------------


def test_private_route_refuses_anonymous_and_wrong_credentials(
    http_server: GitHTTPServer, fixture_repo: Fixture, cache: Path
) -> None:
    url = http_server.url(fixture_repo.name, private=True)
    error = resolve_error(url, cache)
    assert isinstance(error, AuthenticationError) and str(error).startswith(url)
    wrong = "wr0ng/p@ss:word"
    error = resolve_error(url, cache, username="gitops", password=wrong)
    assert isinstance(error, AuthenticationError)
    assert_secret_free(str(error), wrong)
    token = "bad-token-123"
    error = resolve_error(url, cache, bearer_token=token)
    assert isinstance(error, AuthenticationError)
    assert_secret_free(str(error), token)


def test_credentials_as_options(http_server: GitHTTPServer, fixture_repo: Fixture,
                                cache: Path) -> None:
    url = http_server.url(fixture_repo.name, private=True)
    with GitSource(url, cache_dir=cache, username=http_server.username,
                   password=http_server.password) as source:
        artifact = source.fetch(source.resolve())
    assert artifact.revision == f"main@sha1:{fixture_repo.second}"
    assert_secret_free(repr(source) + artifact.model_dump_json(), http_server.password)


def test_credentials_in_the_url_are_used_and_never_shown(
    http_server: GitHTTPServer, fixture_repo: Fixture, cache: Path,
    caplog: pytest.LogCaptureFixture
) -> None:
    userinfo = f"{http_server.username}:{quote(http_server.password, safe='')}"
    url = http_server.url(fixture_repo.name, private=True, userinfo=userinfo)
    caplog.set_level(logging.DEBUG)
    with GitSource(url, cache_dir=cache) as source:
        artifact = source.fetch(source.resolve())
        assert source.url == http_server.url(fixture_repo.name, private=True)
    shown = source.url + artifact.url + repr(source) + caplog.text
    assert_secret_free(shown, http_server.password)
    assert http_server.username not in source.url


def test_credentials_from_the_environment(http_server: GitHTTPServer, fixture_repo: Fixture,
                                          cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITOPS_GIT_USERNAME", http_server.username)
    monkeypatch.setenv("GITOPS_GIT_PASSWORD", http_server.password)
    with GitSource(http_server.url(fixture_repo.name, private=True), cache_dir=cache) as source:
        assert source.resolve() == f"main@sha1:{fixture_repo.second}"


def test_bearer_tokens(http_server: GitHTTPServer, fixture_repo: Fixture, cache: Path) -> None:
    with GitSource(http_server.url(fixture_repo.name, private=True), cache_dir=cache,
                   bearer_token=http_server.token) as source:
        source.fetch(source.resolve())


# -- HTTPS -------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_https_verifies_certificates(https_server: GitHTTPServer, fixture_repo: Fixture,
                                     tls_files: tuple[Path, Path], cache: Path) -> None:
    url = https_server.url(fixture_repo.name)
    error = resolve_error(url, cache)
    assert isinstance(error, SourceError) and "certificate verify failed" in str(error)
    with GitSource(url, cache_dir=cache, ca_bundle=tls_files[0]) as source:
        assert source.fetch(source.resolve()).revision.startswith("main@sha1:")
    with GitSource(url, cache_dir=cache, insecure_skip_tls_verify=True) as source:
        assert source.resolve().startswith("main@sha1:")


# -- SSH ---------------------------------------------------------------------------------


@pytest.fixture
def ssh_url(sshd: SSHServer, served: Path, fixture_repo: Fixture) -> str:
    return sshd.url(served / fixture_repo.name)


def test_ssh_with_a_key_and_known_hosts(ssh_url: str, sshd: SSHServer, fixture_repo: Fixture,
                                        cache: Path) -> None:
    with GitSource(ssh_url + "@v1.1.0#path=apps", cache_dir=cache, ssh_key=sshd.user_key,
                   known_hosts=sshd.known_hosts) as source:
        artifact = source.fetch(source.resolve())
    assert artifact.revision == f"v1.1.0@sha1:{fixture_repo.second}"
    assert sorted(p.name for p in artifact.path.iterdir()) == ["config.yaml", "namespace.yaml"]


def test_ssh_settings_from_the_environment(ssh_url: str, sshd: SSHServer, cache: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITOPS_GIT_SSH_KEY", str(sshd.user_key))
    monkeypatch.setenv("GITOPS_GIT_KNOWN_HOSTS", str(sshd.known_hosts))
    with GitSource(ssh_url, cache_dir=cache) as source:
        assert source.resolve().startswith("main@sha1:")


def test_an_unknown_host_is_refused_unless_explicitly_allowed(
    ssh_url: str, sshd: SSHServer, tmp_path: Path, cache: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    error = resolve_error(ssh_url, cache, ssh_key=sshd.user_key, known_hosts=empty)
    assert isinstance(error, AuthenticationError)
    assert "unknown SSH host key" in str(error)
    with GitSource(ssh_url, cache_dir=cache, ssh_key=sshd.user_key,
                   insecure_ignore_host_key=True) as source:
        assert source.resolve().startswith("main@sha1:")


def test_a_changed_host_key_is_refused(ssh_url: str, sshd: SSHServer, cache: Path) -> None:
    error = resolve_error(ssh_url, cache, ssh_key=sshd.user_key,
                          known_hosts=sshd.other_known_hosts)
    assert isinstance(error, AuthenticationError) and "CHANGED" in str(error)


def test_a_key_the_server_does_not_accept(ssh_url: str, sshd: SSHServer, cache: Path) -> None:
    error = resolve_error(ssh_url, cache, ssh_key=sshd.stranger_key,
                          known_hosts=sshd.known_hosts)
    assert isinstance(error, AuthenticationError) and "Permission denied" in str(error)


def test_an_inline_key_is_used_and_never_shown(ssh_url: str, sshd: SSHServer,
                                               cache: Path) -> None:
    key = sshd.user_key.read_text()
    with GitSource(ssh_url, cache_dir=cache, ssh_key=key, known_hosts=sshd.known_hosts) as source:
        assert source.resolve().startswith("main@sha1:")
    body = key.splitlines()[1]
    error = resolve_error(ssh_url + "@missing", cache, ssh_key=key, known_hosts=sshd.known_hosts)
    assert_secret_free(str(error) + repr(error), body)


def test_a_passphrase_protected_key(ssh_url: str, sshd: SSHServer, cache: Path) -> None:
    with GitSource(ssh_url, cache_dir=cache, ssh_key=sshd.protected_key,
                   ssh_key_passphrase=sshd.passphrase, known_hosts=sshd.known_hosts) as source:
        assert source.resolve().startswith("main@sha1:")
    wrong = "not-the-passphrase"
    error = resolve_error(ssh_url, cache, ssh_key=sshd.protected_key, ssh_key_passphrase=wrong,
                          known_hosts=sshd.known_hosts)
    assert isinstance(error, AuthenticationError)
    assert_secret_free(str(error), wrong, sshd.passphrase)


def test_a_missing_repository_over_ssh(sshd: SSHServer, served: Path, cache: Path) -> None:
    error = resolve_error(sshd.url(served / "missing.git"), cache, ssh_key=sshd.user_key,
                          known_hosts=sshd.known_hosts)
    assert type(error) is SourceError and "no Git repository" in str(error)
