"""HTTP to one registry: connection pool, TLS, the auth challenge flow, error translation.

:class:`RegistrySession` sends requests over urllib3 and answers ``401`` challenges with
HTTP Basic or the bearer-token flow (``WWW-Authenticate: Bearer realm=...`` -> token
endpoint, ``GET`` with Basic credentials or ``POST`` with a Docker identity token),
reusing the token until the registry refuses it. urllib3 exceptions and unexpected
statuses are translated here, at the seam, into :mod:`gitops.errors`, every message
naming the credential-free URL.

This module never logs a header or a body, never puts a credential in a URL or a
message, and never sends credentials over plain HTTP to a host that is not loopback
(unless ``insecure`` says so). A registry's or token service's answer is never quoted:
errors keep the status and the Distribution error codes and messages parsed from a JSON
body, with every credential, its base64, the bearer token and anything that looks like a
token (a JWT, a long mixed-case base64 run) masked out.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import warnings
from collections.abc import Callable, Mapping
from typing import IO, Any
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3
from urllib3.exceptions import (
    HTTPError,
    InsecureRequestWarning,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from gitops import __version__
from gitops.errors import (
    RevisionNotFoundError,
    SourceAuthenticationError,
    SourceError,
    TransientError,
    VerificationError,
)
from gitops.sources.oci.auth import Challenge, Credentials, parse_challenge
from gitops.sources.oci.options import OCIOptions
from gitops.sources.oci.reference import OCIReference, is_loopback
from gitops.urls import REDACTED, redact, scrub

__all__ = ["RegistrySession", "RegistryUnavailableError", "discard"]

log = logging.getLogger("gitops.sources.oci")

_MAX_TOKEN_RESPONSE = 1 << 20
_MAX_ERROR_BODY = 64 << 10
_LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')
# "<...HTTPConnection object at 0x..>: " (urllib3 1.x) or "HTTPConnection(host=.., port=..): "
_OBJECT_RE = re.compile(r"^(?:<[^>]*>|\w*Connection\([^)]*\)): (?:Failed to establish a new "
                        r"connection: )?")
# What a token looks like when nobody said it was one: a JWT, or a long run of base64
# with upper and lower case letters and digits (registry names, tags and sha256 digests
# are lowercase or short).
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*)?")
_BASE64_RUN_RE = re.compile(r"[A-Za-z0-9+/_-]{20,}={0,2}")


class RegistryUnavailableError(SourceError, TransientError):
    """The registry could not be reached, timed out, throttled or failed (5xx): retry later."""


class RegistrySession:
    """Requests to one registry on behalf of one repository.

    ``credentials`` is called at most once, when the registry first asks for them, so a
    Docker credential helper only runs when needed. ``push=True`` asks token services for
    ``pull,push`` access.
    """

    def __init__(
        self,
        ref: OCIReference,
        options: OCIOptions,
        *,
        display: str,
        credentials: Callable[[], Credentials | None],
        push: bool = False,
    ) -> None:
        self.ref = ref
        self.display = display
        self._options = options
        self._get_credentials = credentials
        self._credentials: Credentials | None = None
        self._credentials_loaded = False
        self._push = push
        plain = options.plain_http if options.plain_http is not None else ref.loopback
        self.scheme = "http" if plain else "https"
        self.base = f"{self.scheme}://{ref.api_registry}"
        self._authorization: str | None = None
        #: HTTP requests sent so far (auth challenges and token requests included)
        self.round_trips = 0
        timeout = urllib3.Timeout(connect=options.timeout, read=options.timeout)
        retries = urllib3.Retry(total=5, connect=0, read=0, status=0, other=0, redirect=5)
        pool_kw: dict[str, Any] = {}
        if self.scheme == "https":
            if options.insecure:
                pool_kw.update(cert_reqs="CERT_NONE", assert_hostname=False)
            else:
                pool_kw["cert_reqs"] = "CERT_REQUIRED"
                if options.ca_bundle is not None:
                    pool_kw["ca_certs"] = str(options.ca_bundle)
        self._pool = urllib3.PoolManager(
            num_pools=4, maxsize=4, timeout=timeout, retries=retries,
            headers={"User-Agent": f"gitops/{__version__}"}, **pool_kw,
        )

    def close(self) -> None:
        self._pool.clear()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | IO[bytes] | None = None,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """Send a request, answering one ``401`` challenge. Raises on 401 and 403."""
        sent = dict(headers or {})
        if self._authorization:
            sent["Authorization"] = self._authorization
        start = body.tell() if body is not None and not isinstance(body, bytes) else None
        response = self._send(method, url, sent, body, stream)
        if response.status == 401:
            challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
            discard(response)
            self._authorization = self._authorize(challenge)
            if self._authorization is None:
                raise SourceAuthenticationError(
                    self.display,
                    f"{self.ref.registry} requires authentication: give username/password, "
                    "GITOPS_OCI_USERNAME/GITOPS_OCI_PASSWORD or a docker config.json entry",
                )
            sent["Authorization"] = self._authorization
            if start is not None and not isinstance(body, bytes) and body is not None:
                body.seek(start)
            response = self._send(method, url, sent, body, stream)
            if response.status == 401:
                discard(response)
                self._authorization = None
                raise SourceAuthenticationError(self.display, self._refused(challenge))
        if response.status == 403:
            discard(response)
            raise SourceAuthenticationError(
                self.display, f"{self.ref.registry} denied access to {self.ref.repository}"
            )
        return response

    def _credentials_now(self) -> Credentials | None:
        if not self._credentials_loaded:
            self._credentials = self._get_credentials()
            self._credentials_loaded = True
        return self._credentials

    def _refused(self, challenge: Challenge | None) -> str:
        creds = self._credentials
        if creds is None:
            return f"{self.ref.registry} refused anonymous access"
        if challenge is not None and challenge.scheme == "bearer":
            return f"{self.ref.registry} refused the token issued for the credentials from " \
                   f"{creds.origin}"
        return f"{self.ref.registry} refused the credentials from {creds.origin}"

    def _authorize(self, challenge: Challenge | None) -> str | None:
        """The ``Authorization`` value answering ``challenge`` (None: nothing to offer)."""
        creds = self._credentials_now()
        if challenge is None or challenge.scheme == "basic":
            if creds is None:
                return None
            self._check_channel(self.base, "the registry")
            return creds.basic()
        return "Bearer " + self._fetch_token(challenge, creds)

    def _check_channel(self, url: str, what: str) -> None:
        """Refuse to send credentials in clear text to a host that is not loopback."""
        parts = urlsplit(url)
        if parts.scheme == "http" and not is_loopback(parts.hostname or "") \
                and not self._options.insecure:
            raise SourceAuthenticationError(
                self.display,
                f"refusing to send credentials over plain HTTP to {what} at "
                f"{parts.netloc} (use HTTPS, or insecure=True if you accept the risk)",
            )

    def _fetch_token(self, challenge: Challenge, creds: Credentials | None) -> str:
        realm = challenge.params.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SourceError(self.display, "bearer challenge has no usable realm")
        realm_display = scrub(f"{parts.scheme}://{parts.netloc}{parts.path}")
        actions = "pull,push" if self._push else "pull"
        ours = f"repository:{self.ref.api_repository}:{actions}"
        scopes = [ours] + [
            s for s in challenge.params.get("scope", "").split()
            if s and not s.startswith(f"repository:{self.ref.api_repository}:")
        ]
        query: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        headers: dict[str, str] = {}
        body: bytes | None = None
        if creds is not None and creds.identity_token:
            self._check_channel(realm, "the token service")
            form = [*query, ("scope", " ".join(scopes)), ("grant_type", "refresh_token"),
                    ("client_id", "gitops"), ("refresh_token", creds.identity_token)]
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            method, url = "POST", realm
        else:
            query += [("scope", s) for s in scopes]
            if creds is not None:
                self._check_channel(realm, "the token service")
                headers["Authorization"] = creds.basic()  # no ?account=: URLs get logged
            separator = "&" if parts.query else "?"
            method, url = "GET", f"{realm}{separator}{urlencode(query)}"
        response = self._send(method, url, headers, body, True)
        try:
            if response.status in (401, 403):
                who = f"the credentials from {creds.origin}" if creds else "anonymous access"
                raise SourceAuthenticationError(
                    self.display, f"token service {realm_display} refused {who}"
                )
            if response.status != 200:
                raise SourceError(self.display, f"token service {realm_display} answered "
                                                f"HTTP {response.status}")
            data = self.read_limited(response, _MAX_TOKEN_RESPONSE, "token response")
        finally:
            discard(response)
        try:
            answer = json.loads(data)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise SourceError(self.display, f"token service {realm_display} returned no token")
        log.debug("%s: bearer token obtained from %s for %s", self.display, realm_display,
                  " ".join(scopes))
        return token

    # -- transport and errors --------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | IO[bytes] | None,
        stream: bool,
    ) -> urllib3.BaseHTTPResponse:
        self.round_trips += 1
        try:
            with warnings.catch_warnings():
                if self._options.insecure:
                    warnings.simplefilter("ignore", InsecureRequestWarning)
                response = self._pool.request(
                    method, url, headers=dict(headers), body=body,
                    preload_content=not stream, decode_content=False,
                )
        except HTTPError as exc:
            raise self.translate(exc, f"{method} {_path_of(url)}") from exc
        log.debug("%s: %s %s -> %s", self.display, method, _path_of(url), response.status)
        return response

    def _secrets(self) -> list[str]:
        """Every secret this session holds, in each form an answer could echo it."""
        values: list[str] = []
        creds = self._credentials
        if creds is not None:
            values += creds.secrets
            basic = creds.basic().removeprefix("Basic ")
            values += [basic, basic.rstrip("=")]
            values += [base64.b64encode(s.encode()).decode("ascii") for s in creds.secrets]
        if self._authorization and self._authorization.startswith("Bearer "):
            values.append(self._authorization.removeprefix("Bearer "))
        return sorted((v for v in values if v), key=len, reverse=True)

    def _clean(self, text: str) -> str:
        """``text`` from or about an answer, with secrets and token-like runs masked."""
        text = _JWT_RE.sub(REDACTED, redact(text, self._secrets()))
        return _BASE64_RUN_RE.sub(_mask_token_like, text)

    def translate(self, exc: Exception, what: str) -> SourceError:
        """A urllib3 (or socket) failure as a gitops error naming the registry."""
        reason: Exception = exc
        if isinstance(exc, MaxRetryError) and isinstance(exc.reason, Exception):
            reason = exc.reason
        text = self._clean(_OBJECT_RE.sub("", str(reason)))
        registry = self.ref.registry
        timeout = self._options.timeout
        if isinstance(reason, SSLError):
            return SourceError(
                self.display,
                f"TLS with {registry} failed ({text}); trust its CA with ca_bundle= "
                "(GITOPS_OCI_CA_BUNDLE) or, at your own risk, insecure=True",
            )
        if isinstance(reason, NewConnectionError):
            return RegistryUnavailableError(self.display, f"registry {registry} is unreachable: "
                                                          f"{text}")
        if isinstance(reason, ReadTimeoutError):
            return RegistryUnavailableError(
                self.display, f"registry {registry} did not answer within {timeout:g}s ({what})"
            )
        if isinstance(reason, Urllib3Timeout):
            return RegistryUnavailableError(
                self.display, f"registry {registry} did not accept a connection within "
                              f"{timeout:g}s"
            )
        if isinstance(reason, (ProtocolError, OSError)):
            return RegistryUnavailableError(self.display, f"{what} from {registry} failed: {text}")
        return SourceError(self.display, f"{what} from {registry} failed: {text}")

    def status_error(self, response: urllib3.BaseHTTPResponse, what: str, *,
                      repository: bool = False) -> SourceError:
        """The error for an unexpected status, using the registry's error codes if any."""
        status = response.status
        try:  # a streamed body is read up to the bound; a preloaded one is already here
            body = response.read(_MAX_ERROR_BODY, decode_content=True) \
                or response.data[:_MAX_ERROR_BODY]
        except (HTTPError, OSError):
            body = b""
        finally:
            discard(response)
        codes, message = _error_codes(body)
        detail = self._clean(f"HTTP {status}" + (f" {message}" if message else ""))
        if status == 404:
            if "NAME_UNKNOWN" in codes or repository:
                return RevisionNotFoundError(
                    self.display, f"repository {self.ref.repository} not found on "
                                  f"{self.ref.registry}"
                )
            return RevisionNotFoundError(self.display, f"{what} not found ({detail})")
        if status == 429 or status >= 500:
            return RegistryUnavailableError(self.display, f"{what}: registry answered {detail}")
        if status == 400 and self.scheme == "http" and b"HTTPS" in body[:300]:
            detail += "; the registry speaks HTTPS: pass plain_http=False"
        return SourceError(self.display, f"{what}: registry answered {detail}")

    def read_limited(self, response: urllib3.BaseHTTPResponse, limit: int, what: str) -> bytes:
        try:
            data = response.read(limit + 1, decode_content=True)
        except (HTTPError, OSError) as exc:
            raise self.translate(exc, f"reading the {what}") from exc
        if len(data) > limit:
            raise VerificationError(self.display, f"{what} is larger than {limit} bytes")
        return data

    def same_origin(self, location: str, what: str) -> str:
        """``location`` made absolute; refused if it points at another registry, or at
        this one over another scheme (``http://`` would carry the credentials in clear)."""
        absolute = urljoin(self.base + "/", location)
        there, here = urlsplit(absolute), urlsplit(self.base)
        if (there.scheme, there.netloc) != (here.scheme, here.netloc):
            raise SourceError(self.display, f"registry sent a {what} on another host")
        return absolute

    def next_page(self, link: str | None) -> str | None:
        if not link:
            return None
        match = _LINK_RE.search(link)
        return self.same_origin(match.group(1), "tag list page") if match else None




def discard(response: urllib3.BaseHTTPResponse) -> None:
    """Release a response's connection (draining a small body so it can be reused)."""
    with contextlib.suppress(HTTPError, OSError):
        response.drain_conn()
    response.release_conn()


def _path_of(url: str) -> str:
    """The URL without its query (token requests carry scopes and accounts there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _error_codes(body: bytes) -> tuple[set[str], str]:
    """The Distribution error codes and their messages from an error body.

    Only the ``code`` and ``message`` fields of a Distribution ``errors`` list are
    kept (never ``detail``, which may echo the request); any other body is not quoted.
    """
    try:
        errors = json.loads(body).get("errors") or []
        found = [e for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError, TypeError):
        return set(), ""
    codes = {str(e.get("code", ""))[:64] for e in found}
    message = "; ".join(
        f"{str(e.get('code', ''))[:64]}: {str(e.get('message', ''))[:200]}" for e in found
    )
    return codes, message[:300]


def _mask_token_like(match: re.Match[str]) -> str:
    run = match.group()
    mixed = any(c.isupper() for c in run) and any(c.islower() for c in run) \
        and any(c.isdigit() for c in run)
    return REDACTED if mixed else run
