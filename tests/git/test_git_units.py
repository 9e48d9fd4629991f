"""The Git source's pure parts: URL grammar, ref selection, credentials, error translation."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from dulwich.client import HTTPUnauthorized
from dulwich.errors import GitProtocolError, HangupException

from gitops.errors import (
    InputError,
    InvalidURLError,
    RevisionNotFoundError,
    SourceAuthenticationError,
    SourceError,
)
from gitops.sources.git import refs
from gitops.sources.git.credentials import resolve_credentials
from gitops.sources.git.submodules import resolve_submodule_url, submodule_url
from gitops.sources.git.translate import WantRefusedError, translating
from gitops.sources.git.transport import RemoteRefs
from gitops.sources.git.url import parse_git_url, valid_ref_name
from gitops.sources.git.verify import VerifyMode, parse_mode

SHA = "0123456789abcdef0123456789abcdef01234567"
SECRET = "p@ss/w:rd#1"

# -- URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "transport", "host", "port", "path", "ref", "subpath", "semver"),
    [
        ("git+file:///srv/repo.git", "file", "", None, "/srv/repo.git", None, ".", None),
        ("git+file:///srv/repo@main#path=apps", "file", "", None, "/srv/repo", "main", "apps",
         None),
        ("git+git://127.0.0.1:9418/r.git@v1.2.0", "git", "127.0.0.1", 9418, "/r.git", "v1.2.0",
         ".", None),
        ("git://example.com/r.git", "git", "example.com", None, "/r.git", None, ".", None),
        ("git+https://example.com/org/r.git@refs/heads/feature/x#path=./k8s//prod/",
         "https", "example.com", None, "/org/r.git", "refs/heads/feature/x", "k8s/prod", None),
        ("git+http://[::1]:8080/r.git#semver=>=1.0.0 <2.0.0&path=apps", "http", "::1", 8080,
         "/r.git", None, "apps", ">=1.0.0 <2.0.0"),
        (f"git+ssh://git@example.com:2222/org/r.git@{SHA}", "ssh", "example.com", 2222,
         "/org/r.git", SHA, ".", None),
        ("git+https://example.com/r%40x.git@feat%40ure", "https", "example.com", None,
         "/r@x.git", "feat@ure", ".", None),
    ],
)
def test_url_grammar(url: str, transport: str, host: str, port: int | None, path: str,
                     ref: str | None, subpath: str, semver: str | None) -> None:
    parsed = parse_git_url(url)
    assert (parsed.transport, parsed.host, parsed.port, parsed.path, parsed.ref) == (
        transport, host, port, path, ref)
    assert parsed.subpath == PurePosixPath(subpath)
    assert parsed.semver == semver


def test_commit_pins_are_recognized_and_lowercased() -> None:
    assert parse_git_url(f"git+git://h/r.git@{SHA.upper()}").commit == SHA
    assert parse_git_url("git+git://h/r.git@main").commit is None


def test_credentials_leave_the_display_url_and_the_remote() -> None:
    parsed = parse_git_url("git+https://me:p%40ss%2Fw%3Ard%231@example.com/r.git@main#path=a")
    assert parsed.username == "me" and parsed.password == SECRET
    assert parsed.display == "git+https://example.com/r.git@main#path=a"
    assert parsed.remote == "https://example.com/r.git"
    assert SECRET not in repr(parsed) and "p%40ss" not in repr(parsed)
    token = parse_git_url("git+https://ghp_TOKEN@example.com/r.git")
    assert "ghp_TOKEN" not in token.display and token.username == "ghp_TOKEN"


def test_ssh_user_is_part_of_the_address() -> None:
    parsed = parse_git_url("git+ssh://git@example.com/r.git")
    assert parsed.display == "git+ssh://git@example.com/r.git"
    assert parsed.remote == "ssh://git@example.com/r.git"


def test_remote_key_is_stable_safe_and_distinct() -> None:
    a = parse_git_url("git+https://u:pw@example.com/org/app.git@main#path=x")
    b = parse_git_url("git+https://example.com/org/app@v1")
    c = parse_git_url("git+https://example.com/other/app.git")
    assert a.remote_key == b.remote_key  # same remote: ref, path, .git and credentials differ
    assert a.remote_key != c.remote_key
    assert a.remote_key.startswith("example.com-app-")
    assert all(ch.isalnum() or ch in "._-" for ch in a.remote_key)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/r.git", "not a Git source URL"),
        ("git+ftp://example.com/r.git", "not a Git source URL"),
        ("git+https://example.com/r.git@", "empty ref"),
        ("git+https://example.com/r.git@bad..ref", "not a valid branch"),
        ("git+https://example.com/r.git@main#semver=1.x", "either @REF or semver"),
        ("git+https://example.com/r.git#path=../etc", "leaves the artifact root"),
        ("git+https://example.com/r.git#path=/etc", "must be relative"),
        ("git+https://example.com/r.git#ref=main", "unknown fragment option"),
        ("git+https://example.com", "no repository path"),
        ("git+https:///r.git", "no host"),
        ("git+ssh://git@github.com:org/r.git", "scp-like"),
        ("git+ssh://git:pw@example.com/r.git", "SSH passwords are not supported"),
        ("git+git://user@example.com/r.git", "take no user"),
        ("git+file://host/srv/r.git", "absolute local path"),
        ("git+https://example.com:99999/r.git", "invalid host or port"),
    ],
)
def test_bad_urls_are_refused_with_one_clear_error(url: str, message: str) -> None:
    with pytest.raises(InvalidURLError, match=message):
        parse_git_url(url)


def test_url_errors_never_show_a_password() -> None:
    with pytest.raises(InvalidURLError) as info:
        parse_git_url("git+https://me:hunter2@example.com/r.git#path=../x")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("name", ["main", "feature/x", "v1.2.3", "refs/heads/a-b_c", "ü"])
def test_valid_ref_names(name: str) -> None:
    assert valid_ref_name(name)


@pytest.mark.parametrize("name", ["", "-x", "a..b", "a b", "x.lock", "a/", "/a", "a@{1}",
                                  "a~1", "a^", "a:b", "a*", "@"])
def test_invalid_ref_names(name: str) -> None:
    assert not valid_ref_name(name)


# -- which commit ------------------------------------------------------------------------

ADVERTISED = RemoteRefs(
    refs={
        "HEAD": "1" * 40,
        "refs/heads/main": "1" * 40,
        "refs/heads/both": "2" * 40,
        "refs/tags/both": "2" * 40,
        "refs/tags/v1.0.0": "3" * 40,
        "refs/tags/v1.1.0": "a" * 40,
        "refs/tags/v2.0.0-rc.1": "4" * 40,
        "refs/tags/not-semver": "5" * 40,
    },
    peeled={"refs/tags/v1.1.0": "6" * 40},
    head="refs/heads/main",
)


@pytest.mark.parametrize(
    ("url", "revision", "tag_object"),
    [
        ("git+git://h/r.git", f"main@sha1:{'1' * 40}", None),
        ("git+git://h/r.git@main", f"main@sha1:{'1' * 40}", None),
        ("git+git://h/r.git@refs/heads/both", f"both@sha1:{'2' * 40}", None),
        ("git+git://h/r.git@v1.0.0", f"v1.0.0@sha1:{'3' * 40}", None),
        ("git+git://h/r.git@v1.1.0", f"v1.1.0@sha1:{'6' * 40}", "a" * 40),
        ("git+git://h/r.git#semver=^1.0", f"v1.1.0@sha1:{'6' * 40}", "a" * 40),
        ("git+git://h/r.git#semver=~1.0", f"v1.0.0@sha1:{'3' * 40}", None),
        ("git+git://h/r.git#semver=>=2.0.0-rc.0", f"v2.0.0-rc.1@sha1:{'4' * 40}", None),
    ],
)
def test_select(url: str, revision: str, tag_object: str | None) -> None:
    resolved = refs.select(parse_git_url(url), ADVERTISED)
    assert resolved.revision == revision
    assert resolved.tag_object == tag_object


def test_head_without_symref_information_is_named_head() -> None:
    bare = RemoteRefs({"HEAD": "1" * 40}, {}, None)
    assert refs.select(parse_git_url("git+git://h/r.git"), bare).revision == f"HEAD@sha1:{'1' * 40}"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("git+git://h/r.git@both", "both a branch and a tag"),
        ("git+git://h/r.git@nope", "no branch or tag named 'nope'"),
        ("git+git://h/r.git@abc1234", "full 40-hex SHA"),
        ("git+git://h/r.git@refs/pull/1/head", "no ref 'refs/pull/1/head'"),
        ("git+git://h/r.git#semver=>=3", "no tag matches semver range '>=3'"),
    ],
)
def test_select_errors(url: str, message: str) -> None:
    with pytest.raises(RevisionNotFoundError, match=message):
        refs.select(parse_git_url(url), ADVERTISED)


def test_empty_remote_has_no_head() -> None:
    with pytest.raises(RevisionNotFoundError, match="no HEAD"):
        refs.select(parse_git_url("git+git://h/r.git"), RemoteRefs({}, {}, None))


def test_prefixes_narrow_what_the_server_lists() -> None:
    assert refs.prefixes_for(parse_git_url("git+git://h/r.git")) == ["HEAD"]
    assert refs.prefixes_for(parse_git_url("git+git://h/r.git@x")) == [
        "refs/heads/x", "refs/tags/x"]
    assert refs.prefixes_for(parse_git_url("git+git://h/r.git#semver=1.x")) == ["refs/tags/"]


def test_revisions_round_trip() -> None:
    assert refs.parse_revision("u", f"feature/x@sha1:{SHA}") == ("feature/x", SHA)
    assert refs.parse_revision("u", f"sha1:{SHA}") == (None, SHA)
    assert refs.pin(SHA).revision == f"sha1:{SHA}"
    for bad in ("main", f"main@sha256:{SHA}", "sha1:abc", f"sha256:{'0' * 64}"):
        with pytest.raises(RevisionNotFoundError, match="not a Git revision"):
            refs.parse_revision("u", bad)


# -- credentials -------------------------------------------------------------------------


def test_credentials_precedence_option_url_environment(tmp_path: Path) -> None:
    url = parse_git_url("git+https://url-user:url-pass@h/r.git")
    env = {"GITOPS_GIT_USERNAME": "env-user", "GITOPS_GIT_PASSWORD": "env-pass"}
    assert resolve_credentials(url, environ=env).username == "url-user"
    assert resolve_credentials(url, username="opt", environ=env).username == "opt"
    bare = parse_git_url("git+https://h/r.git")
    creds = resolve_credentials(bare, environ=env)
    assert (creds.username, creds.password) == ("env-user", "env-pass")
    assert "env-pass" not in repr(creds)
    assert creds.secrets() == ("env-pass",)


def test_insecure_switches_are_never_read_from_the_environment() -> None:
    env = {"GITOPS_GIT_INSECURE_IGNORE_HOST_KEY": "true"}
    creds = resolve_credentials(parse_git_url("git+ssh://git@h/r.git"), environ=env)
    assert creds.insecure_ignore_host_key is False


def test_inline_ssh_key_is_a_secret(tmp_path: Path) -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
    creds = resolve_credentials(parse_git_url("git+ssh://git@h/r.git"), ssh_key=key, environ={})
    assert creds.ssh_key_is_inline and key in creds.secrets()


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("git+ssh://git@h/r.git", {"ssh_key": "/nonexistent/key"}, "SSH key file"),
        ("git+ssh://git@h/r.git", {"known_hosts": "/nonexistent/kh"}, "known_hosts file"),
        ("git+https://h/r.git", {"ca_bundle": "/nonexistent/ca.pem"}, "CA bundle"),
        ("git+https://h/r.git", {"password": "a", "bearer_token": "b"}, "not both"),
    ],
)
def test_unusable_credentials_are_input_errors(url: str, options: dict[str, str],
                                               message: str) -> None:
    with pytest.raises(InputError, match=message):
        resolve_credentials(parse_git_url(url), environ={}, **options)  # type: ignore[arg-type]


def test_files_for_other_transports_are_not_checked() -> None:
    env = {"GITOPS_GIT_SSH_KEY": "/nonexistent/key"}
    resolve_credentials(parse_git_url("git+https://h/r.git"), environ=env)


# -- error translation -------------------------------------------------------------------


def _raised(exc: BaseException, secrets: tuple[str, ...] = (SECRET,)) -> SourceError:
    with pytest.raises(SourceError) as info, translating("git+https://h/r.git", secrets,
                                                        "listing refs", 5.0):
        raise exc
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is exc
    return info.value


@pytest.mark.parametrize(
    ("exc", "kind", "message"),
    [
        (HTTPUnauthorized(None, "u"), SourceAuthenticationError, "HTTP 401"),
        (TimeoutError(), SourceError, "no answer within 5s"),
        (ConnectionRefusedError(111, "Connection refused"), SourceError,
         "cannot connect: Connection refused"),
        (HangupException([b"Host key verification failed."]), SourceAuthenticationError,
         "unknown SSH host key"),
        (HangupException([b"@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@",
                          b"Host key verification failed."]), SourceAuthenticationError, "CHANGED"),
        (HangupException([b"git@h: Permission denied (publickey)."]), SourceAuthenticationError,
         "SSH authentication refused"),
        (HangupException([b"ssh: connect to host h port 22: Connection refused"]), SourceError,
         "cannot connect"),
        (HangupException([b"fatal: '/x' does not appear to be a git repository"]), SourceError,
         "no Git repository"),
        (HangupException(), SourceError, "closed the connection"),
        (GitProtocolError(f"unknown command b'ERR upload-pack: not our ref {SHA}'"),
         WantRefusedError, "refused the object"),
        (GitProtocolError(f"error with {SECRET} inside"), SourceError, "***"),
        (ValueError("bad pkt-line"), SourceError, "unexpected answer"),
    ],
)
def test_translation(exc: BaseException, kind: type[SourceError], message: str) -> None:
    error = _raised(exc)
    assert type(error) is kind
    assert message in str(error)
    assert str(error).startswith("git+https://h/r.git: listing refs")


def test_tls_failures_are_short_and_say_what_to_do() -> None:
    cause = OSError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed "
                    "certificate (_ssl.c:1006)")
    try:
        raise GitProtocolError("HTTPSConnectionPool(...) Max retries exceeded") from cause
    except GitProtocolError as exc:
        error = _raised(exc)
    assert "certificate verify failed: self-signed certificate" in str(error)
    assert "ca_bundle" in str(error)


# -- submodules and verification modes ---------------------------------------------------


def test_submodule_urls() -> None:
    gitmodules = (b'[submodule "lib"]\n\tpath = vendor/lib\n\turl = ../lib.git\n'
                  b'[submodule "x"]\n\tpath = x\n')
    assert submodule_url(gitmodules, "vendor/lib") == "../lib.git"
    assert submodule_url(gitmodules, "x") is None
    assert submodule_url(None, "x") is None
    parent = parse_git_url("git+https://h/org/app.git@main#path=k8s")
    sub = resolve_submodule_url(parent, "../lib.git", "vendor/lib")
    assert (sub.transport, sub.host, sub.path, sub.ref) == ("https", "h", "/org/lib.git", None)
    assert sub.same_origin(parent)
    scp = resolve_submodule_url(parent, "git@other:org/lib.git", "x")
    assert (scp.transport, scp.host, scp.username, scp.path) == ("ssh", "other", "git",
                                                                 "org/lib.git")
    assert not scp.same_origin(parent)
    https = resolve_submodule_url(parent, "https://other/lib.git", "x")
    assert (https.transport, https.host) == ("https", "other")


@pytest.mark.parametrize("raw", ["/etc/secrets.git", "file:///etc/secrets.git"])
def test_local_submodules_of_remote_repositories_are_refused(raw: str) -> None:
    with pytest.raises(SourceError, match="local path"):
        resolve_submodule_url(parse_git_url("git+https://h/app.git"), raw, "x")
    local = resolve_submodule_url(parse_git_url("git+file:///srv/app.git"), raw, "x")
    assert local.transport == "file"


@pytest.mark.parametrize(("text", "mode"), [("head", VerifyMode.HEAD), ("HEAD", VerifyMode.HEAD),
                                            ("Tag", VerifyMode.TAG),
                                            ("TagAndHEAD", VerifyMode.TAG_AND_HEAD),
                                            ("tag_and_head", VerifyMode.TAG_AND_HEAD)])
def test_verify_modes(text: str, mode: VerifyMode) -> None:
    assert parse_mode("u", text) is mode


def test_unknown_verify_mode() -> None:
    with pytest.raises(InputError, match="unknown verify mode"):
        parse_mode("u", "always")


def test_unknown_or_mistyped_options_are_one_invalid_url_error() -> None:
    from gitops import open_source
    from gitops.sources.git import GitSource

    with pytest.raises(InvalidURLError, match=r"option pasword: .*known options: path, semver, "
                                              r"username, password") as info:
        open_source("git+https://u:hunter2@h/r.git", pasword="x")
    assert "hunter2" not in str(info.value) and info.value.url == "git+https://u:***@h/r.git"
    with pytest.raises(InvalidURLError, match="option timeout: Input should be greater than 0"):
        GitSource("git+https://h/r.git", timeout=0)
    with pytest.raises(InvalidURLError, match="option timeout: Input should be a valid number"):
        GitSource("git+https://h/r.git", timeout="soon")
    with pytest.raises(InvalidURLError, match=r"option protocol_version: .*must be 0, 1 or 2"):
        GitSource("git+https://h/r.git", protocol_version=3)
