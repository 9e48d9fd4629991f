"""Credential scrubbing, fragments and subpaths."""

from __future__ import annotations

import pytest

from gitops.errors import InvalidURLError
from gitops.urls import parse_fragment, redact, safe_subpath, scrub, split_userinfo


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("git+https://user:hunter2@example.com/r.git", "git+https://user:***@example.com/r.git"),
        ("https://ghp_TOKEN123@example.com/r.git", "https://***@example.com/r.git"),
        ("git+ssh://git@example.com/r.git", "git+ssh://git@example.com/r.git"),
        ("oci://127.0.0.1:5000/app:v1", "oci://127.0.0.1:5000/app:v1"),
        ("error cloning https://a:b@h/x: 401", "error cloning https://a:***@h/x: 401"),
    ],
)
def test_scrub(url: str, shown: str) -> None:
    assert scrub(url) == shown


def test_split_userinfo_decodes_and_removes_the_password() -> None:
    clean, user, password = split_userinfo("https://me%40corp:p%2Fw@example.com:8443/r.git")
    assert (clean, user, password) == ("https://me%40corp@example.com:8443/r.git", "me@corp", "p/w")
    assert split_userinfo("https://example.com/r") == ("https://example.com/r", None, None)


def test_redact_removes_secrets_in_any_form() -> None:
    text = "auth failed for p/w (p%2Fw) at https://u:p%2Fw@h/"
    out = redact(text, ["p/w", None])
    assert "p/w" not in out and "p%2Fw" not in out


def test_parse_fragment() -> None:
    assert parse_fragment("u", "path=apps/web&semver=>=1.0.0 <2", {"path", "semver"}) == {
        "path": "apps/web", "semver": ">=1.0.0 <2"}
    with pytest.raises(InvalidURLError, match="unknown fragment option 'ref'"):
        parse_fragment("u", "ref=main", {"path"})
    with pytest.raises(InvalidURLError, match="twice"):
        parse_fragment("u", "path=a&path=b", {"path"})


@pytest.mark.parametrize("bad", ["/etc", "../x", "a/../../b", "a\\b"])
def test_unsafe_subpaths_are_refused(bad: str) -> None:
    with pytest.raises(InvalidURLError):
        safe_subpath("git+https://user:secret@h/r.git", bad)


def test_subpath_errors_never_show_credentials() -> None:
    with pytest.raises(InvalidURLError) as info:
        safe_subpath("git+https://user:secret@h/r.git", "../x")
    assert "secret" not in str(info.value)


def test_safe_subpath_normalizes() -> None:
    assert str(safe_subpath("u", "./apps//web/")) == "apps/web"
    assert str(safe_subpath("u", "")) == "."
