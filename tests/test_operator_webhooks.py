"""Push webhooks from GitHub, GitLab and Gitea, posted over loopback HTTP as each sends them.

The payloads follow each provider's documented push event (trimmed to the fields that
matter plus a few that do not); signatures are computed the way each provider computes them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from gitops.errors import InputError, InvalidURLError
from gitops.operator.httpserver import Server, serve
from gitops.operator.webhooks import (
    IgnoredEvent,
    PushEvent,
    WebhookRejected,
    normalize_repository,
    parse_push,
    read_secret_file,
    source_repository,
    webhook_routes,
)

SECRET = b"It's a Secret to Everybody"
AFTER = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
BEFORE = "95790bf891e76fee5e1747ab589903a6a1f80f22"


def github_push(ref: str = "refs/heads/main", after: str = AFTER) -> dict[str, Any]:
    return {
        "ref": ref, "before": BEFORE, "after": after, "created": False, "deleted": False,
        "forced": False, "base_ref": None, "compare": "https://github.com/Octo-Org/Hello-World/compare/x",
        "commits": [{"id": after, "message": "Update deploy.yaml", "distinct": True}],
        "head_commit": {"id": after, "message": "Update deploy.yaml"},
        "repository": {
            "id": 1296269, "name": "Hello-World", "full_name": "Octo-Org/Hello-World",
            "private": False, "html_url": "https://github.com/Octo-Org/Hello-World",
            "url": "https://github.com/Octo-Org/Hello-World",
            "git_url": "git://github.com/Octo-Org/Hello-World.git",
            "ssh_url": "git@github.com:Octo-Org/Hello-World.git",
            "clone_url": "https://github.com/Octo-Org/Hello-World.git",
            "svn_url": "https://github.com/Octo-Org/Hello-World",
            "default_branch": "main", "master_branch": "main",
        },
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
        "sender": {"login": "octocat", "id": 1},
    }


def gitlab_push(ref: str = "refs/heads/master", kind: str = "push") -> dict[str, Any]:
    return {
        "object_kind": kind, "event_name": kind, "before": BEFORE, "after": AFTER, "ref": ref,
        "checkout_sha": AFTER, "user_id": 4, "user_name": "John Smith", "user_username": "jsmith",
        "project_id": 15,
        "project": {
            "id": 15, "name": "Diaspora", "web_url": "http://example.com/mike/diaspora",
            "git_ssh_url": "git@example.com:mike/diaspora.git",
            "git_http_url": "http://example.com/mike/diaspora.git", "namespace": "Mike",
            "path_with_namespace": "mike/diaspora", "default_branch": "master",
            "homepage": "http://example.com/mike/diaspora",
            "url": "git@example.com:mike/diaspora.git",
            "ssh_url": "git@example.com:mike/diaspora.git",
            "http_url": "http://example.com/mike/diaspora.git",
        },
        "commits": [{"id": AFTER, "message": "Update Catalan translation"}],
        "total_commits_count": 1,
        "repository": {
            "name": "Diaspora", "url": "git@example.com:mike/diaspora.git",
            "homepage": "http://example.com/mike/diaspora",
            "git_http_url": "http://example.com/mike/diaspora.git",
            "git_ssh_url": "git@example.com:mike/diaspora.git",
        },
    }


def gitea_push(ref: str = "refs/heads/develop") -> dict[str, Any]:
    return {
        "ref": ref, "before": BEFORE, "after": AFTER,
        "compare_url": "http://localhost:3000/gitea/webhooks/compare/a...b",
        "commits": [{"id": AFTER, "message": "Webhooks Yay!"}],
        "repository": {
            "id": 140, "owner": {"id": 1, "login": "gitea", "username": "gitea"},
            "name": "webhooks", "full_name": "gitea/webhooks",
            "html_url": "http://localhost:3000/gitea/webhooks",
            "ssh_url": "ssh://git@localhost:2222/gitea/webhooks.git",
            "clone_url": "http://localhost:3000/gitea/webhooks.git",
            "default_branch": "master",
        },
        "pusher": {"id": 1, "login": "gitea"}, "sender": {"id": 1, "login": "gitea"},
    }


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def github_headers(body: bytes, event: str = "push") -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "X-Hub-Signature-256": f"sha256={sign(body)}", "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/044aadd"}


def gitlab_headers(event: str = "Push Hook", token: bytes = SECRET) -> dict[str, str]:
    return {"X-Gitlab-Event": event, "X-Gitlab-Token": token.decode(),
            "Content-Type": "application/json"}


def gitea_headers(body: bytes) -> dict[str, str]:
    # what Gitea sends: GitHub's and Gogs' event headers too, and both signatures
    return {"X-GitHub-Event": "push", "X-Gogs-Event": "push", "X-Gitea-Event": "push",
            "X-Gitea-Delivery": "f6266f16-1bf3-46a5-9ea4-602e06ead473",
            "X-Gitea-Signature": sign(body), "X-Hub-Signature-256": f"sha256={sign(body)}",
            "Content-Type": "application/json"}


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


class Receiver:
    """The operator's side: records pushes and app triggers, answers like the scheduler."""

    def __init__(self) -> None:
        self.pushes: list[PushEvent] = []
        self.apps: list[str] = []
        self.known = {"gitops/shop"}
        self.sources = {"gitops/shop": "git+https://github.com/octo-org/hello-world.git@main",
                        "team/web": "git+ssh://git@github.com/Octo-Org/Hello-World@dev",
                        "team/api": "git+https://example.com/mike/diaspora"}

    def on_push(self, event: PushEvent) -> int:
        self.pushes.append(event)
        return sum(event.matches(url) for url in self.sources.values())

    def on_app(self, key: str) -> bool:
        self.apps.append(key)
        return key in self.known


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def server(receiver: Receiver) -> Iterator[Server]:
    routes = webhook_routes(SECRET, on_push=receiver.on_push, on_app=receiver.on_app)
    with serve("127.0.0.1:0", routes, name="webhooks") as running:
        yield running


def post(server: Server, path: str, body: bytes,
         headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(server.url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


# -- POST /hooks/git ---------------------------------------------------------------


def test_a_signed_github_push_triggers_the_apps_following_that_branch(
        server: Server, receiver: Receiver) -> None:
    body = encode(github_push())
    assert post(server, "/hooks/git", body, github_headers(body)) == (202, {"triggered": 1})
    event = receiver.pushes[0]
    assert (event.provider, event.ref, event.branch, event.tag) == ("github", "refs/heads/main",
                                                                    "main", None)
    assert event.revision == AFTER and event.default_branch == "main"
    assert "github.com/octo-org/hello-world" in event.repositories


def test_a_gitlab_push_and_tag_push_are_read(server: Server, receiver: Receiver) -> None:
    body = encode(gitlab_push())
    assert post(server, "/hooks/git", body, gitlab_headers()) == (202, {"triggered": 1})
    body = encode(gitlab_push("refs/tags/v1.0.0", kind="tag_push"))
    assert post(server, "/hooks/git", body, gitlab_headers("Tag Push Hook"))[0] == 202
    branch, tag = receiver.pushes
    assert (branch.provider, branch.branch, branch.revision) == ("gitlab", "master", AFTER)
    assert branch.repositories == {"example.com/mike/diaspora"}
    assert (tag.branch, tag.tag, tag.ref) == (None, "v1.0.0", "refs/tags/v1.0.0")


def test_a_gitea_push_with_both_signatures_is_read_as_gitea(
        server: Server, receiver: Receiver) -> None:
    body = encode(gitea_push())
    assert post(server, "/hooks/git", body, gitea_headers(body)) == (202, {"triggered": 0})
    event = receiver.pushes[0]
    assert (event.provider, event.branch, event.revision) == ("gitea", "develop", AFTER)
    # HTTP on port 3000 and SSH on 2222: both spellings are kept
    assert event.repositories == {"localhost:3000/gitea/webhooks", "localhost:2222/gitea/webhooks"}


@pytest.mark.parametrize("headers", [
    {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64},
    {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha1=abc"},
    {"X-GitHub-Event": "push"},
    {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong"},
    {"X-Gitlab-Event": "Push Hook"},
    {"X-Gitea-Event": "push", "X-Gitea-Signature": "0" * 64},
    {"X-Gitea-Event": "push"},
    {},
])
def test_a_wrong_or_missing_signature_is_401_and_triggers_nothing(
        server: Server, receiver: Receiver, headers: dict[str, str],
        caplog: pytest.LogCaptureFixture) -> None:
    body = encode(github_push())
    with caplog.at_level(logging.DEBUG):
        status, answer = post(server, "/hooks/git", body, headers)
    assert status == 401
    assert "error" in answer
    assert receiver.pushes == []
    assert SECRET.decode() not in caplog.text and SECRET.decode() not in json.dumps(answer)


def test_one_wrong_signature_of_two_is_refused(server: Server, receiver: Receiver) -> None:
    body = encode(gitea_push())
    headers = gitea_headers(body) | {"X-Hub-Signature-256": "sha256=" + sign(body, b"other")}
    assert post(server, "/hooks/git", body, headers)[0] == 401
    assert receiver.pushes == []


def test_a_signature_of_another_body_is_refused(server: Server, receiver: Receiver) -> None:
    body = encode(github_push())
    tampered = encode(github_push(ref="refs/heads/evil"))
    assert post(server, "/hooks/git", tampered, github_headers(body))[0] == 401
    assert receiver.pushes == []


def test_a_ping_is_accepted_and_triggers_nothing(server: Server, receiver: Receiver) -> None:
    body = encode({"zen": "Design for failure.", "hook_id": 1, "hook": {"type": "Repository"}})
    assert post(server, "/hooks/git", body, github_headers(body, "ping")) == (
        202, {"triggered": 0, "ignored": "ping"})
    assert receiver.pushes == []


def test_other_events_trigger_nothing(server: Server, receiver: Receiver) -> None:
    body = encode({"action": "opened", "issue": {"number": 1}})
    assert post(server, "/hooks/git", body, github_headers(body, "issues"))[1] == {
        "triggered": 0, "ignored": "issues"}
    body = encode({"object_kind": "merge_request"})
    assert post(server, "/hooks/git", body, gitlab_headers("Merge Request Hook"))[0] == 202
    assert receiver.pushes == []


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe", b""])
def test_a_signed_malformed_body_is_400(server: Server, receiver: Receiver, body: bytes) -> None:
    status, answer = post(server, "/hooks/git", body, github_headers(body))
    assert status == 400
    assert answer["error"]
    assert receiver.pushes == []


def test_a_push_without_ref_or_repository_is_400(server: Server) -> None:
    no_ref = github_push()
    del no_ref["ref"]
    no_repo = github_push()
    del no_repo["repository"]
    for payload, message in ((no_ref, "without a ref"), (no_repo, "without a repository URL")):
        body = encode(payload)
        status, answer = post(server, "/hooks/git", body, github_headers(body))
        assert (status, message in answer["error"]) == (400, True)


def test_github_form_encoded_deliveries_are_read(server: Server, receiver: Receiver) -> None:
    body = urlencode({"payload": json.dumps(github_push())}).encode()
    headers = github_headers(body) | {"Content-Type": "application/x-www-form-urlencoded"}
    assert post(server, "/hooks/git", body, headers) == (202, {"triggered": 1})
    assert receiver.pushes[0].branch == "main"


def test_a_deleted_branch_has_no_revision() -> None:
    body = encode(github_push(after="0" * 40))
    event = parse_push(github_headers(body), body, SECRET)
    assert isinstance(event, PushEvent)
    assert event.revision is None and event.branch == "main"


def test_a_gitlab_system_hook_push_is_a_push() -> None:
    body = encode(gitlab_push())
    assert isinstance(parse_push(gitlab_headers("System Hook"), body, SECRET), PushEvent)
    other = encode({"object_kind": "repository_update"})
    assert isinstance(parse_push(gitlab_headers("System Hook"), other, SECRET), IgnoredEvent)


def test_header_names_are_matched_without_case() -> None:
    body = encode(github_push())
    headers = {name.lower(): value for name, value in github_headers(body).items()}
    assert isinstance(parse_push(headers, body, SECRET), PushEvent)


def test_a_signed_delivery_without_an_event_header_is_400() -> None:
    body = encode(github_push())
    with pytest.raises(WebhookRejected) as caught:
        parse_push({"X-Hub-Signature-256": f"sha256={sign(body)}"}, body, SECRET)
    assert caught.value.status == 400


def test_a_handler_failure_is_500_not_a_crash() -> None:
    def broken(_: PushEvent) -> int:
        raise RuntimeError("scheduler is gone")

    routes = webhook_routes(SECRET, on_push=broken, on_app=lambda _: True)
    with serve("127.0.0.1:0", routes, name="webhooks") as running:
        body = encode(github_push())
        request = urllib.request.Request(running.url + "/hooks/git", data=body,
                                         headers=github_headers(body), method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 500
        caught.value.close()


# -- POST /hooks/apps/NAMESPACE/NAME -------------------------------------------------


def bearer(token: bytes = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.decode()}"}


def test_the_app_hook_triggers_a_known_app_with_the_bearer_token(
        server: Server, receiver: Receiver) -> None:
    assert post(server, "/hooks/apps/gitops/shop", b"", bearer()) == (
        202, {"triggered": 1, "app": "gitops/shop"})
    assert post(server, "/hooks/apps/gitops/other", b"", bearer())[0] == 404
    assert receiver.apps == ["gitops/shop", "gitops/other"]


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + SECRET.decode()},
    {"Authorization": SECRET.decode()},
])
def test_the_app_hook_without_the_right_token_is_401(
        server: Server, receiver: Receiver, headers: dict[str, str]) -> None:
    request = urllib.request.Request(server.url + "/hooks/apps/gitops/shop", data=b"",
                                     headers=headers, method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 401
    assert caught.value.headers["WWW-Authenticate"] == "Bearer"
    caught.value.close()
    assert receiver.apps == []


@pytest.mark.parametrize("path", ["/hooks/apps/shop", "/hooks/apps/a/b/c", "/hooks/apps/a/"])
def test_the_app_hook_needs_namespace_and_name(server: Server, receiver: Receiver,
                                               path: str) -> None:
    assert post(server, path, b"", bearer())[0] == 404
    assert receiver.apps == []


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        webhook_routes(b"", on_push=lambda _: 0, on_app=lambda _: True)
    with pytest.raises(ValueError, match="empty"):
        parse_push({}, b"{}", b"")


# -- repository URLs -------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "https://GitHub.com/Org/Repo.git",
    "http://github.com/org/repo",
    "https://github.com:443/org/repo/",
    "git@github.com:org/repo.git",
    "ssh://git@github.com:22/org/repo.git",
    "ssh://git@github.com/org/repo",
    "git://github.com/org/repo.git",
    "git+https://user:tok@github.com/org/repo.git@main#path=x",
    "git+ssh://git@github.com/org/repo.git@v1.2.0",
    "git+http://github.com:80/org/repo.git/",
    "https://user:secret@github.com/org/repo.git",
])
def test_every_url_of_one_repository_normalizes_alike(url: str) -> None:
    assert normalize_repository(url) == "github.com/org/repo"


@pytest.mark.parametrize("url", [
    "https://github.com:8443/org/repo",
    "https://gitlab.com/org/repo",
    "https://github.com/org/other",
    "https://github.com/group/org/repo",
    "ssh://git@github.com:2222/org/repo",
])
def test_other_repositories_normalize_differently(url: str) -> None:
    assert normalize_repository(url) != "github.com/org/repo"


@pytest.mark.parametrize("url", ["", "not a url", "C:/repo", "https:///org/repo",
                                 "https://host", "git+https://host/"])
def test_a_url_that_names_no_repository_is_an_error(url: str) -> None:
    with pytest.raises(InvalidURLError):
        normalize_repository(url)


def test_errors_about_urls_never_show_credentials() -> None:
    with pytest.raises(InvalidURLError) as caught:
        normalize_repository("https://user:hunter2@github.com:bad/org/repo")
    assert "hunter2" not in str(caught.value)


def test_source_repository_reads_git_source_urls_only() -> None:
    assert source_repository("git+https://tok@Host/Org/Repo.git@main#path=apps") == (
        "host/org/repo", "main")
    assert source_repository("git+ssh://git@host/org/repo") == ("host/org/repo", None)
    assert source_repository("git+file:///srv/Repos/app.git@v1") == ("/srv/repos/app", "v1")
    assert source_repository("dir:./manifests") is None
    assert source_repository("./manifests") is None
    assert source_repository("oci://ghcr.io/org/repo:1.0") is None
    with pytest.raises(InvalidURLError):
        source_repository("git+https://host/repo@bad..ref")


def push(ref: str, default_branch: str | None = "main") -> PushEvent:
    return PushEvent("github", frozenset({"host/org/repo"}), ref,
                     ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None,
                     ref.removeprefix("refs/tags/") if ref.startswith("refs/tags/") else None,
                     AFTER, default_branch)


@pytest.mark.parametrize(("source", "ref", "default_branch", "expected"), [
    ("git+https://host/org/repo@main", "refs/heads/main", "main", True),
    ("git+https://host/org/repo@main", "refs/heads/dev", "main", False),
    ("git+https://host/org/repo@refs/heads/main", "refs/heads/main", "main", True),
    ("git+https://host/org/repo", "refs/heads/main", "main", True),
    ("git+https://host/org/repo", "refs/heads/dev", "main", False),
    ("git+https://host/org/repo", "refs/heads/dev", None, True),
    ("git+https://host/org/repo", "refs/tags/v1", "main", False),
    ("git+https://host/org/repo@v1", "refs/tags/v1", "main", True),
    ("git+https://host/org/repo#semver=^1.0", "refs/tags/v1.2.0", "main", True),
    ("git+https://host/org/repo#semver=^1.0", "refs/heads/main", "main", False),
    (f"git+https://host/org/repo@{AFTER}", "refs/heads/main", "main", False),
    ("git+https://host/org/other@main", "refs/heads/main", "main", False),
    ("git+https://otherhost/org/repo@main", "refs/heads/main", "main", False),
    ("dir:./manifests", "refs/heads/main", "main", False),
])
def test_which_sources_a_push_matches(source: str, ref: str, default_branch: str | None,
                                      expected: bool) -> None:
    assert push(ref, default_branch).matches(source) is expected


def test_a_semver_option_makes_a_source_follow_tags() -> None:
    assert push("refs/tags/v2.0.0").matches("git+https://host/org/repo", semver=">=1")
    assert not push("refs/heads/main").matches("git+https://host/org/repo", semver=">=1")


# -- the secret file --------------------------------------------------------------------


def test_read_secret_file_strips_one_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"s3cret\n")
    assert read_secret_file(path) == b"s3cret"
    path.write_bytes(b"s3cret\r\n")
    assert read_secret_file(str(path)) == b"s3cret"
    path.write_bytes(b"s3cret\n\n")
    assert read_secret_file(path) == b"s3cret\n"
    path.write_bytes(b" spaced ")
    assert read_secret_file(path) == b" spaced "


def test_read_secret_file_errors_name_the_path_never_the_content(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(InputError, match=f"{missing}: cannot read the webhook secret"):
        read_secret_file(missing)
    empty = tmp_path / "empty"
    empty.write_bytes(b"\n")
    with pytest.raises(InputError, match=f"{empty}: the webhook secret file is empty"):
        read_secret_file(empty)
    with pytest.raises(InputError, match="cannot read"):
        read_secret_file(tmp_path)  # a directory


def test_secrets_stay_out_of_reprs_and_messages() -> None:
    body = encode(github_push())
    event = parse_push(github_headers(body), body, SECRET)
    assert SECRET.decode() not in repr(event)
    routes = webhook_routes(SECRET, on_push=lambda _: 0, on_app=lambda _: True)
    assert SECRET.decode() not in repr(routes)
    with pytest.raises(WebhookRejected) as caught:
        parse_push({"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "guess"}, body, SECRET)
    assert "guess" not in str(caught.value) and SECRET.decode() not in str(caught.value)
