"""Kubernetes API failures as gitops errors, and Secrets and credentials kept out of them.

The HTTP seam raises :class:`StatusError` (the server answered with a ``Status``),
:class:`ConnectionFailed` (no connection: the API server is unreachable) or
:class:`NoAnswer` (connected, but no answer in time). :func:`object_error` turns one of
them, about one object, into the :mod:`gitops.errors` type the engine understands:

* ApplyError (422 and friends, with the server's message, which names the object);
* ConflictError (field-manager conflicts, failed preconditions);
* TransientApplyError (throttling, 5xx, a read timeout: worth retrying, after
  ``retry_after`` seconds when the server said so);
* UnreachableApplyError (an :class:`~gitops.errors.UnreachableError`, *not* transient:
  the client already retried the connection for ``unreachable_timeout`` seconds, so the
  engine should skip the rest of the sync rather than retry each object);
* TargetAuthenticationError (401, or 403 for an anonymous user: the credentials).

Every error carries the target's credential-free ``url``. This module must never let a
Secret value or a credential into a message: :func:`scrub` masks every value of the
Secret being applied, :func:`redact_credentials` any ``Authorization`` value a proxy or
server might echo in a response body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from gitops import masking
from gitops.errors import (
    ApplyError,
    ConflictError,
    TargetAuthenticationError,
    TargetError,
    TransientError,
    UnreachableError,
)
from gitops.masking import MASK
from gitops.model import Resource, ResourceKey

__all__ = [
    "ConnectionFailed",
    "NoAnswer",
    "StatusError",
    "TransientApplyError",
    "TransientStatusError",
    "TransportError",
    "Unauthorized",
    "UnreachableApplyError",
    "object_error",
    "redact_credentials",
    "scrub",
    "secret_values",
    "status_error",
]

#: HTTP statuses worth retrying (throttled, or the server or a proxy failed).
TRANSIENT_CODES = frozenset({429, 500, 502, 503, 504})


class StatusError(TargetError):
    """The API server answered with an error ``Status``.

    ``code`` is the HTTP status, ``reason`` the Status reason (``Invalid``,
    ``Conflict``, ``NotFound``...), ``message`` the server's message and ``details``
    the Status details (``causes``...).
    """

    def __init__(
        self,
        where: str,
        code: int,
        reason: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
        *,
        url: str = "",
    ) -> None:
        self.where = where
        self.code = code
        self.status_reason = reason
        self.message = message
        self.reason = message
        self.details: Mapping[str, Any] = details or {}
        self.retry_after = retry_after
        # not super(): Unauthorized puts TargetAuthenticationError (another signature) next
        TargetError.__init__(self, f"{where}: {code} {reason}: {message}", url=url)

    @property
    def causes(self) -> list[Mapping[str, Any]]:
        causes = self.details.get("causes")
        return [c for c in causes if isinstance(c, Mapping)] if isinstance(causes, list) else []


class TransientStatusError(StatusError, TransientError):
    """Throttling (429) or a server-side failure (5xx): retry, after ``retry_after`` if set."""


class Unauthorized(StatusError, TargetAuthenticationError):
    """401, or 403 for ``system:anonymous``: the credentials were missing or refused."""


class TransportError(TargetError):
    """No usable answer from the API server (see the two subclasses)."""

    retry_after: float | None = None


class ConnectionFailed(TransportError, UnreachableError):
    """The API server cannot be reached: connection refused or reset, connect timeout, TLS.

    ``sent`` is False when the request certainly never reached the server (it may be sent
    again whatever it does), True when the connection broke after it was sent.
    """

    def __init__(self, message: str, *, sent: bool = False, url: str = "") -> None:
        super().__init__(message, url=url)
        self.sent = sent


class NoAnswer(TransportError, TransientError):
    """Connected, but the API server did not answer within the read timeout."""


class TransientApplyError(ApplyError, TransientError):
    """An apply or delete that failed for a reason worth retrying (after ``retry_after``)."""

    def __init__(
        self, key: object, message: str, *, retry_after: float | None = None, url: str = ""
    ) -> None:
        super().__init__(key, message, url=url)
        self.retry_after = retry_after


class UnreachableApplyError(ApplyError, UnreachableError):
    """An apply or delete that failed because the API server cannot be reached.

    Not a TransientError: the client already retried the connection; what remains of a
    sync should be skipped, not retried object by object.
    """


def status_error(
    where: str,
    code: int,
    http_reason: str,
    body: bytes,
    retry_after_header: str | None,
    *,
    url: str = "",
    credentials: Iterable[str] = (),
) -> StatusError:
    """Build the error for an HTTP error response (a ``Status`` body, or anything else).

    A body that is not a ``Status`` (a proxy's page, say) is quoted in part. The message
    never shows ``credentials`` (the client's token...) nor any ``Authorization`` value.
    """
    reason, message, details = http_reason or "Error", "", {}
    document = _json(body)
    if isinstance(document, dict) and document.get("kind") == "Status":
        reason = str(document.get("reason") or reason)
        message = str(document.get("message") or "")
        raw_details = document.get("details")
        details = raw_details if isinstance(raw_details, dict) else {}
    if not message:
        text = body[:300].decode("utf-8", "replace").strip()
        message = text or http_reason or "no message"
    message = redact_credentials(scrub(message, credentials))
    retry_after = _retry_after(retry_after_header, details)
    cls: type[StatusError] = StatusError
    if code in TRANSIENT_CODES:
        cls = TransientStatusError
    elif code == 401 or (code == 403 and _ANONYMOUS in message):
        cls = Unauthorized
    return cls(where, code, reason, message, details, retry_after, url=url)


def object_error(
    error: StatusError | TransportError,
    key: ResourceKey,
    secrets: Iterable[str] = (),
    *,
    url: str = "",
) -> TargetError:
    """The error to report for one object; ``secrets`` are masked out of the message."""
    url = url or error.url
    if isinstance(error, ConnectionFailed):
        return UnreachableApplyError(key, scrub(str(error), secrets), url=url)
    if isinstance(error, TransportError):
        return TransientApplyError(key, scrub(str(error), secrets), url=url)
    message = scrub(error.message, secrets)
    if isinstance(error, Unauthorized):
        return TargetAuthenticationError(
            url, f"{key}: {error.code} {error.status_reason}: {message} (check the "
            "credentials of the kubeconfig context)"
        )
    if error.code == 409 and any(
        "FieldManagerConflict" in (c.get("reason"), c.get("type")) for c in error.causes
    ):
        return ConflictError(
            key,
            f"{message} (fields owned by another field manager; sync with force=true to "
            "take them over, as a sync normally does)",
            url=url,
        )
    if error.code == 409:
        return ConflictError(key, f"conflict: {message}", url=url)
    if isinstance(error, TransientError):
        return TransientApplyError(
            key, f"{error.code} {error.status_reason}: {message}",
            retry_after=error.retry_after, url=url,
        )
    if error.code in (400, 422):
        return ApplyError(key, f"rejected by the API server: {message}", url=url)
    return ApplyError(key, f"{error.code} {error.status_reason}: {message}", url=url)


_ANONYMOUS = 'User "system:anonymous"'
# An Authorization value (or a bare scheme + token) a server or proxy may echo back.
_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)(\s+|%20)[A-Za-z0-9._~+/=:-]{4,}")


def redact_credentials(text: str) -> str:
    """``text`` with ``Bearer <token>`` and ``Basic <base64>`` values masked."""
    return _CREDENTIAL.sub(lambda m: f"{m.group(1)} {MASK}", text)


# -- Secret values ------------------------------------------------------------------------


def secret_values(resource: Resource | Mapping[str, Any]) -> list[str]:
    """Every value (and its base64/decoded form) of a Secret, longest first; [] otherwise."""
    return masking.secret_values(resource.manifest if isinstance(resource, Resource) else resource)


def scrub(message: str, secrets: Iterable[str]) -> str:
    """``message`` with each secret masked: anywhere if it is 4+ characters, else when quoted."""
    return masking.redact_values(message, secrets)


# -- helpers ------------------------------------------------------------------------------


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _retry_after(header: str | None, details: Mapping[str, Any]) -> float | None:
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass  # an HTTP date: rare from an API server; fall back to the details
    seconds = details.get("retryAfterSeconds")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        return max(0.0, float(seconds))
    return None
