"""Git push webhooks (GitHub, GitLab, Gitea/Forgejo) and the per-application trigger.

:func:`parse_push` authenticates a delivery against the shared secret (GitHub's and
Gitea's HMAC-SHA256 signatures, GitLab's token, each compared in constant time) *before*
reading its body, then reads the push it describes as a :class:`PushEvent`: the pushed
repository under every URL the payload gives (normalized by :func:`normalize_repository`
so ``git@host:org/repo.git`` and ``https://host/org/repo`` compare equal), the ref, the
branch or tag and the new commit. :meth:`PushEvent.matches` says whether a source URL of
ours follows that push. :func:`webhook_routes` turns this into ``POST /hooks/git`` and
``POST /hooks/apps/NAMESPACE/NAME`` for :func:`gitops.operator.httpserver.serve`.

The secret and the signatures a client sent never appear in an error, a log line or a
repr; repository URLs are shown without credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from gitops.errors import GitopsError, InputError, InvalidURLError
from gitops.operator.httpserver import Handler, Headers, Request, Response, json_response
from gitops.sources.git.url import GitURL, parse_git_url
from gitops.urls import scrub, split_authority

__all__ = [
    "APP_HOOK_PREFIX",
    "GIT_HOOK_PATH",
    "IgnoredEvent",
    "Provider",
    "PushEvent",
    "WebhookRejected",
    "normalize_repository",
    "parse_push",
    "pushed_to",
    "read_secret_file",
    "source_repository",
    "webhook_routes",
]

log = logging.getLogger(__name__)

Provider = Literal["github", "gitlab", "gitea"]

GIT_HOOK_PATH = "/hooks/git"
APP_HOOK_PREFIX = "/hooks/apps/"

_DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22, "git": 9418}
_GIT_SCHEMES = frozenset({"git+file", "git+git", "git", "git+http", "git+https", "git+ssh"})
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCP_RE = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]/]+\]|[^:/]+):(?P<path>.*)$")
_SHA1_RE = re.compile(r"^[0-9a-fA-F]{40}$")
_ZERO_SHA_RE = re.compile(r"^0+$")
# where each provider puts the pushed repository's URLs
_URL_KEYS = ("clone_url", "ssh_url", "git_url", "html_url", "svn_url", "url",
             "git_http_url", "git_ssh_url", "web_url", "http_url", "homepage")
# the event header each Gitea-family server sends (Gitea also sends X-GitHub-Event)
_GITEA_EVENTS = ("X-Gitea-Event", "X-Forgejo-Event", "X-Gogs-Event")
_GITEA_HEX_SIGNATURES = ("X-Gitea-Signature", "X-Forgejo-Signature", "X-Gogs-Signature")
_GITLAB_PUSH_KINDS = frozenset({"push", "tag_push"})


class WebhookRejected(GitopsError):
    """A delivery that is refused: ``status`` is the HTTP answer (401 bad signature, 400 bad body)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class PushEvent:
    """A push to one repository, as the webhook reported it.

    ``repositories`` holds every URL of the repository the payload gave, normalized;
    ``ref`` is the full ref (``refs/heads/main``), ``branch`` or ``tag`` its short name,
    ``revision`` the commit it points to now (None when the push deleted it) and
    ``default_branch`` the repository's default branch when the payload says.
    """

    provider: Provider
    repositories: frozenset[str]
    ref: str
    branch: str | None
    tag: str | None
    revision: str | None
    default_branch: str | None = None

    def matches(self, source_url: str, *, semver: str | None = None) -> bool:
        """True when the Git source ``source_url`` may now resolve to another commit.

        Same repository, and: ``@BRANCH`` names the pushed branch; ``@TAG`` the pushed
        tag; ``@refs/...`` the pushed ref; no ``@REF`` follows the default branch (any
        branch when the payload does not name it); a semver range (in the URL or given
        as ``semver``) follows every tag push; a pinned commit follows nothing. Non-Git
        source URLs never match. Raises InvalidURLError for a malformed Git URL.
        """
        parsed = _git_source(source_url)
        if parsed is None or _repository_key(parsed) not in self.repositories:
            return False
        if parsed.semver is not None or semver is not None:
            return self.tag is not None
        ref = parsed.ref
        if ref is None:
            return self.branch is not None and self.default_branch in (None, self.branch)
        if _SHA1_RE.match(ref):
            return False
        if ref.startswith("refs/"):
            return ref == self.ref
        return ref in (self.branch, self.tag)


@dataclass(frozen=True)
class IgnoredEvent:
    """An authenticated delivery that is not a push (``ping``, ``issues``, …): triggers nothing."""

    provider: Provider
    event: str


def parse_push(headers: Mapping[str, str], body: bytes, secret: bytes) -> PushEvent | IgnoredEvent:
    """Authenticate one webhook delivery and read the push it reports.

    Raises :class:`WebhookRejected` with 401 when the signature or token is missing or
    wrong (nothing of the body is read then), 400 when the body is not a JSON object or
    a push without a ref or repository URL. Header names are matched without case.
    """
    if not secret:
        raise ValueError("the webhook secret is empty")
    found = Headers(headers)
    provider, event = _provider(found)
    _authenticate(provider, found, body, secret)
    if event is None:
        raise WebhookRejected(400, f"{provider} delivery without an event header")
    payload = _payload(found, body)
    if not _is_push(provider, event, payload):
        return IgnoredEvent(provider, event)
    return _push_event(provider, payload)


def _provider(headers: Headers) -> tuple[Provider, str | None]:
    for name in _GITEA_EVENTS:
        if name in headers:
            return "gitea", headers[name].strip()
    if "X-Gitlab-Event" in headers:
        return "gitlab", headers["X-Gitlab-Event"].strip()
    if "X-GitHub-Event" in headers:
        return "github", headers["X-GitHub-Event"].strip()
    if any(name in headers for name in _GITEA_HEX_SIGNATURES):
        return "gitea", None
    if "X-Gitlab-Token" in headers:
        return "gitlab", None
    if "X-Hub-Signature-256" in headers:
        return "github", None
    raise WebhookRejected(
        401, "no X-Hub-Signature-256, X-Gitea-Signature or X-Gitlab-Token header: "
             "unsigned deliveries are refused")


def _authenticate(provider: Provider, headers: Headers, body: bytes, secret: bytes) -> None:
    if provider == "gitlab":
        token = headers.get("X-Gitlab-Token")
        if token is None:
            raise WebhookRejected(401, "gitlab delivery without X-Gitlab-Token")
        if not hmac.compare_digest(_raw(token.strip()), secret):
            raise WebhookRejected(401, "gitlab delivery with a wrong X-Gitlab-Token")
        return
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    names = ["X-Hub-Signature-256"] + (list(_GITEA_HEX_SIGNATURES) if provider == "gitea" else [])
    present = [name for name in names if name in headers]
    if not present:
        raise WebhookRejected(401, f"{provider} delivery without {' or '.join(names[:2])}")
    for name in present:  # every signature sent must be right
        value = headers[name].strip()
        if name == "X-Hub-Signature-256":
            algorithm, _, value = value.partition("=")
            if algorithm.lower() != "sha256":
                raise WebhookRejected(401, f"{provider} delivery with a malformed {name}")
        if not hmac.compare_digest(_raw(value.lower()), expected):
            raise WebhookRejected(401, f"{provider} delivery with a wrong {name}")


def _raw(value: str) -> bytes:
    """A header value's bytes (http.server decodes headers as Latin-1)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace")


def _payload(headers: Headers, body: bytes) -> dict[str, Any]:
    content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
    text: str | bytes = body
    if content_type == "application/x-www-form-urlencoded":  # GitHub's form option
        form = parse_qs(body.decode("utf-8", "replace"))
        if "payload" not in form:
            raise WebhookRejected(400, "form-encoded delivery without a payload field")
        text = form["payload"][0]
    try:
        payload = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRejected(400, f"malformed JSON body: {exc.__class__.__name__}") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "the JSON body is not an object")
    return payload


def _is_push(provider: Provider, event: str, payload: dict[str, Any]) -> bool:
    if provider == "gitlab":
        if event == "System Hook":
            return payload.get("object_kind") in _GITLAB_PUSH_KINDS
        return event in ("Push Hook", "Tag Push Hook")
    return event == "push"


def _push_event(provider: Provider, payload: dict[str, Any]) -> PushEvent:
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref:
        raise WebhookRejected(400, f"{provider} push without a ref")
    urls: list[str] = []
    default_branch: str | None = None
    for section in ("repository", "project"):
        part = payload.get(section)
        if not isinstance(part, dict):
            continue
        urls.extend(value for key in _URL_KEYS if isinstance(value := part.get(key), str))
        for key in ("default_branch", "master_branch"):
            if default_branch is None and isinstance(part.get(key), str) and part[key]:
                default_branch = part[key]
    repositories = set()
    for url in urls:
        try:
            repositories.add(normalize_repository(url))
        except InvalidURLError:
            log.debug("webhook: skipping a repository URL that does not parse: %s", scrub(url))
    if not repositories:
        raise WebhookRejected(400, f"{provider} push without a repository URL")
    revision = payload.get("checkout_sha") if provider == "gitlab" else None
    if not isinstance(revision, str) or not revision:
        revision = payload.get("after")
    if not isinstance(revision, str) or not revision or _ZERO_SHA_RE.match(revision):
        revision = None
    branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
    tag = ref.removeprefix("refs/tags/") if ref.startswith("refs/tags/") else None
    return PushEvent(provider, frozenset(repositories), ref, branch, tag, revision,
                     default_branch)


def normalize_repository(url: str) -> str:
    """A comparison key for the repository ``url`` names: ``host[:port]/path``, lower-cased.

    Accepts our Git source URLs (``git+https://user:tok@host/org/repo.git@main#path=x``),
    plain ``https://``/``http://``/``ssh://``/``git://`` URLs and scp-like
    ``git@host:org/repo.git``. Credentials, the scheme, default ports (80, 443, 22,
    9418), ``@REF``, ``#fragment``, a trailing ``/`` and ``.git`` are dropped, so every
    URL of one repository gives the same key; a local repository's key is its path.
    Raises InvalidURLError naming the (credential-free) URL when it names no repository.
    """
    text = url.strip()
    match = _SCHEME_RE.match(text)
    if match is None:
        return _scp_key(url, text)
    scheme = match.group(1).lower()
    if scheme in _GIT_SCHEMES:
        return _repository_key(parse_git_url(text))
    _, hostport, remainder = split_authority(text[match.end():])
    path = re.split(r"[?#]", remainder, maxsplit=1)[0]
    try:
        parts = urlsplit(f"x://{hostport}/")
        host, port = parts.hostname or "", parts.port
    except ValueError:
        raise InvalidURLError(scrub(url), "invalid host or port") from None
    if not host and scheme != "file":
        raise InvalidURLError(scrub(url), "no host in the repository URL")
    return _key(scheme, host, port, unquote(path), scrub(url))


def _scp_key(url: str, text: str) -> str:
    found = _SCP_RE.match(text)
    if found is None or not found.group("path") or len(found.group("host")) < 2:
        # one letter before ':' is a Windows drive, not a host
        raise InvalidURLError(scrub(url), "not a repository URL (scheme://host/path or "
                                          "user@host:path)")
    host = found.group("host").strip("[]")
    return _key("ssh", host, None, "/" + found.group("path"), scrub(url))


def _repository_key(parsed: GitURL) -> str:
    return _key(parsed.transport, parsed.host, parsed.port, parsed.path, parsed.display)


def _key(scheme: str, host: str, port: int | None, path: str, shown: str) -> str:
    path = path.rstrip("/")
    path = path.removesuffix(".git").rstrip("/")
    if not path.strip("/"):
        raise InvalidURLError(shown, "no repository path")
    scheme = scheme.removeprefix("git+")
    if port is not None and _DEFAULT_PORTS.get(scheme) == port:
        port = None
    if not host:
        return path.lower()  # a local repository: its path
    hostport = f"[{host}]" if ":" in host else host
    if port is not None:
        hostport += f":{port}"
    return f"{hostport}/{path.lstrip('/')}".lower()


def _git_source(source_url: str) -> GitURL | None:
    match = _SCHEME_RE.match(source_url.strip())
    if match is None or match.group(1).lower() not in _GIT_SCHEMES:
        return None
    return parse_git_url(source_url.strip())


def source_repository(source_url: str) -> tuple[str, str | None] | None:
    """``(normalized repository, @REF or None)`` of a Git source URL; None for other sources.

    Raises InvalidURLError for a malformed Git source URL.
    """
    parsed = _git_source(source_url)
    if parsed is None:
        return None
    return _repository_key(parsed), parsed.ref


def read_secret_file(path: str | os.PathLike[str]) -> bytes:
    """The webhook secret in ``path``, without one trailing newline.

    Raises InputError naming the path (never the content) when the file cannot be read
    or holds nothing.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise InputError(f"{os.fspath(path)}: cannot read the webhook secret: {reason}") from None
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise InputError(f"{os.fspath(path)}: the webhook secret file is empty")
    return data


def webhook_routes(
    secret: bytes,
    *,
    on_push: Callable[[PushEvent], int],
    on_app: Callable[[str], bool],
) -> dict[tuple[str, str], Handler]:
    """Routes for :func:`~gitops.operator.httpserver.serve`.

    ``POST /hooks/git``: a signed push delivery; ``on_push(event)`` reconciles the
    applications that follow it and returns how many, answered as 202
    ``{"triggered": n}`` (a ping or another event: 202 with ``triggered`` 0); 401 for a
    bad signature or token, 400 for a malformed body. ``POST /hooks/apps/NAMESPACE/NAME``
    with ``Authorization: Bearer SECRET``: 202 when ``on_app("NAMESPACE/NAME")`` is true,
    404 when it is false (no such application), 401 without the right token.
    """
    if not secret:
        raise ValueError("the webhook secret is empty")

    def git_hook(request: Request) -> Response:
        try:
            event = parse_push(request.headers, request.body, secret)
        except WebhookRejected as exc:
            log.warning("webhook from %s refused (%d): %s", request.remote, exc.status,
                        exc.message)
            return json_response(exc.status, {"error": exc.message})
        if isinstance(event, IgnoredEvent):
            log.info("webhook: %s %r event ignored", event.provider, event.event)
            return json_response(202, {"triggered": 0, "ignored": event.event})
        triggered = on_push(event)
        log.info("webhook: %s push to %s %s triggered %d application(s)", event.provider,
                 min(event.repositories), event.ref, triggered)
        return json_response(202, {"triggered": triggered})

    def app_hook(request: Request) -> Response:
        scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(_raw(token.strip()), secret):
            log.warning("webhook from %s refused (401): missing or wrong bearer token",
                        request.remote)
            return json_response(401, {"error": "a valid bearer token is required"},
                                 {"WWW-Authenticate": "Bearer"})
        parts = [unquote(part) for part in request.path[len(APP_HOOK_PREFIX):].split("/")]
        if len(parts) != 2 or not all(parts):
            return json_response(404, {"error": "expected /hooks/apps/NAMESPACE/NAME"})
        key = "/".join(parts)
        if not on_app(key):
            return json_response(404, {"error": f"no application {key}"})
        log.info("webhook: application %s triggered", key)
        return json_response(202, {"triggered": 1, "app": key})

    return {("POST", GIT_HOOK_PATH): git_hook, ("POST", APP_HOOK_PREFIX): app_hook}


def pushed_to(event: PushEvent, url: str, semver: object) -> bool:
    """Whether ``event`` pushed to the source ``url``; a URL that does not parse never
    matches (its application reports the problem itself), so one typo cannot break the
    webhook for every other application."""
    try:
        return event.matches(url, semver=semver if isinstance(semver, str) else None)
    except GitopsError:
        return False
