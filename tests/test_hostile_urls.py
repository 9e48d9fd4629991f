"""Hostile passwords in URLs: read whole as git and pip read them, and scrubbed whole.

Everything up to the last ``@`` before the host is userinfo, so a password with an
unencoded ``@``, ``#``, ``?`` or ``:`` is neither cut short (leaving its tail in what
is shown) nor mistaken for a fragment. ``#path=`` after the path stays a fragment.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops.errors import InvalidURLError
from gitops.sources.git.credentials import resolve_credentials
from gitops.sources.git.url import parse_git_url
from gitops.sources.oci.reference import parse_oci_url
from gitops.urls import redact, scrub, split_authority, split_userinfo

HOSTILE = [
    "p@ss#w@rd",
    "p@ss",
    "pa#ss",
    "p:a:ss",
    "pa?ss=1&x",
    "p%40ss%23w",  # encoded: decodes to p@ss#w
    "pä$$wört@✓",
    "#path=x",
    "@@@",
    "pa/ss@w@rd",  # a '/' is read when nothing else can be meant: see below
]


@pytest.mark.parametrize("password", [p for p in HOSTILE if "/" not in p])
def test_git_url_reads_the_whole_password(password: str) -> None:
    url = f"git+https://user:{password}@git.example.com:8443/org/repo.git@main#path=apps"
    parsed = parse_git_url(url)
    assert parsed.password == unquote(password)
    assert (parsed.username, parsed.host, parsed.port) == ("user", "git.example.com", 8443)
    assert (parsed.path, parsed.ref, parsed.subpath) == ("/org/repo.git", "main",
                                                           PurePosixPath("apps"))
    assert parsed.display == "git+https://git.example.com:8443/org/repo.git@main#path=apps"
    assert resolve_credentials(parsed, environ={}).password == unquote(password)


@pytest.mark.parametrize("password", [p for p in HOSTILE if "/" not in p])
def test_oci_url_reads_the_whole_password(password: str) -> None:
    ref, user, secret = parse_oci_url(f"oci://user:{password}@127.0.0.1:5000/team/app:v1#path=k8s")
    assert (user, secret) == ("user", unquote(password))
    assert (ref.host, ref.port, ref.repository, ref.tag) == ("127.0.0.1", 5000, "team/app", "v1")
    assert ref.path == PurePosixPath("k8s")
    assert "user" not in ref.display and "@" not in ref.display


@pytest.mark.parametrize("password", HOSTILE)
@pytest.mark.parametrize(
    "template",
    [
        "git+https://user:{p}@git.example.com/org/repo.git@v1.2#path=apps",
        "https://user:{p}@git.example.com/org/repo.git",
        "oci://user:{p}@registry.example.com:5000/app:v1#path=k8s",
        "cloning 'https://user:{p}@git.example.com/r.git' failed: 401 (see https://x.test/a@b)",
        "https://user:{p}@[::1]:8443/r.git",
    ],
)
def test_scrub_hides_the_whole_password(template: str, password: str) -> None:
    text = template.format(p=password)
    shown = scrub(text)
    assert password not in shown
    for piece in ("ss#w", "ss@", "ss/w", "rd@", "wört", "a:ss", "a?ss", "ss%23"):
        if piece in password:
            assert piece not in shown, shown
    assert "user:***@" in shown
    assert shown == template.format(p="***").replace("user:***", "user:***")


def test_a_fragment_after_the_path_stays_a_fragment() -> None:
    parsed = parse_git_url("git+https://git.example.com/org/repo.git#path=a@b")
    assert (parsed.password, parsed.ref, parsed.subpath) == (None, None, PurePosixPath("a@b"))
    parsed = parse_git_url("git+https://user:p#w@git.example.com/org/repo.git@main#path=apps")
    assert (parsed.password, parsed.ref, parsed.subpath) == ("p#w", "main", PurePosixPath("apps"))
    assert split_authority("host/repo.git#path=a@b") == (None, "host", "/repo.git#path=a@b")
    assert split_authority("u:p@ss#w@rd@host/r.git@main#path=x") == (
        "u:p@ss#w@rd", "host", "/r.git@main#path=x")


def test_a_slash_in_a_password_is_read_when_nothing_else_can_be_meant() -> None:
    # "user:pa" is no host:port, so the '/' belongs to the password
    parsed = parse_git_url("git+https://user:pa/ss@w@rd@git.example.com/org/repo.git@main")
    assert (parsed.password, parsed.host, parsed.path, parsed.ref) == (
        "pa/ss@w@rd", "git.example.com", "/org/repo.git", "main")
    assert scrub("https://user:pa/ss@w@rd@h/r.git@main") == "https://user:***@h/r.git@main"
    # a numeric "port" is a port: a URL that means something else is left as it is
    assert split_authority("host:8443/org/repo.git@main") == (None, "host:8443",
                                                              "/org/repo.git@main")
    # '@' then '/' is ambiguous: as RFC 3986 (and git) read it, the host is "ss" and the
    # rest a path with a ref; a password holding '/' must be written %2F (docs/git.md)
    assert split_authority("user:p@ss/w@rd@host/r.git") == ("user:p", "ss", "/w@rd@host/r.git")


def test_lone_tokens_and_ssh_users() -> None:
    assert scrub("https://ghp_T@K#N@github.com/o/r.git") == "https://***@github.com/o/r.git"
    assert scrub("git+ssh://git@github.com/o/r.git") == "git+ssh://git@github.com/o/r.git"
    assert scrub("a=https://u:p@ss@h/x,b=https://v:q#q@h/y") == \
        "a=https://u:***@h/x,b=https://v:***@h/y"


def test_split_userinfo_with_hostile_passwords() -> None:
    assert split_userinfo("https://me%40corp:p@ss#w@rd@h.example:8443/r.git#path=x") == (
        "https://me%40corp@h.example:8443/r.git#path=x", "me@corp", "p@ss#w@rd")


def test_url_errors_never_show_any_part_of_the_password() -> None:
    for url in ("oci://user:s3cr3t@host:abc/app", "oci://user:pa/s3cr3t@/app",
                "git+https://user:pa/s3cr3t@h:x/r.git", "git+ssh://user:s3cr3t@h/r.git",
                "git+git://user:s3cr3t#@h/r.git"):
        with pytest.raises(InvalidURLError) as info:
            parse_oci_url(url) if url.startswith("oci") else parse_git_url(url)
        assert "s3cr3t" not in str(info.value), str(info.value)


def test_a_refused_query_string_is_never_echoed() -> None:
    # A token in a query (?password=, ?access_token=) is a secret too.
    for url in ("oci://reg.example/app?password=s3cr3t", "oci://reg.example/app:1?t=s3cr3t#path=a",
                "git+https://host.example?token=s3cr3t", "git+https://host.example?t=s3cr3t#path=a",
                "git+https://host.example/repo.git?token=s3cr3t",
                "git+https://host.example/repo.git?token=s3cr3t@main#path=a"):
        with pytest.raises(InvalidURLError, match="unexpected query string") as info:
            parse_oci_url(url) if url.startswith("oci") else parse_git_url(url)
        text = str(info.value)
        assert "s3cr3t" not in text, text
        assert "host.example" in text or "reg.example/app" in text, text  # the URL is named


# Passwords of any characters but '/' (which RFC 3986 requires encoded, and which is
# ambiguous after an '@') and whitespace; the "Pw" start keeps them apart from the rest.
PASSWORDS = st.text(
    alphabet=st.characters(exclude_categories=["Cs", "Cc", "Zs", "Zl", "Zp"],
                           exclude_characters="/"),
    min_size=1, max_size=30,
).map(lambda s: f"Pw{s}")


@given(PASSWORDS)
def test_property_any_password_is_read_and_scrubbed_whole(password: str) -> None:
    url = f"git+https://user:{password}@git.example.com/org/repo.git@main#path=apps"
    parsed = parse_git_url(url)
    assert parsed.password == unquote(password)
    assert (parsed.host, parsed.ref, parsed.subpath) == ("git.example.com", "main",
                                                         PurePosixPath("apps"))
    assert password not in scrub(url) and password not in parsed.display
    assert password not in redact(f"fetch {url}: refused", [])
    ref, _, secret = parse_oci_url(f"oci://u:{password}@127.0.0.1:5000/app:v1")
    assert secret == unquote(password) and ref.repository == "app"
