"""Kubernetes API failures as gitops errors, and Secret values kept out of them.

The HTTP seam raises :class:`StatusError` (the server answered with a ``Status``) or
:class:`ConnectionFailed` (it did not answer); :func:`object_error` turns a StatusError
about one object into the :mod:`gitops.errors` type the engine understands: ApplyError
(422 and friends, with the server's message, which names the object), ConflictError
(field-manager conflicts, failed preconditions), and ``TransientError`` mix-ins for
throttling, 5xx and timeouts, carrying the server's ``Retry-After``. This module must
never let a Secret value into a message: :func:`scrub` masks every value of the Secret
being applied before a server message is shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from gitops import masking
from gitops.errors import (
    ApplyError,
    ConflictError,
    TargetError,
    TransientError,
    UnreachableError,
)
from gitops.model import Resource, ResourceKey

__all__ = [
    "ConnectionFailed",
    "StatusError",
    "TransientApplyError",
    "TransientStatusError",
    "object_error",
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
    ) -> None:
        self.where = where
        self.code = code
        self.status_reason = reason
        self.message = message
        self.details: Mapping[str, Any] = details or {}
        self.retry_after = retry_after
        super().__init__(f"{where}: {code} {reason}: {message}")

    @property
    def causes(self) -> list[Mapping[str, Any]]:
        causes = self.details.get("causes")
        return [c for c in causes if isinstance(c, Mapping)] if isinstance(causes, list) else []


class TransientStatusError(StatusError, TransientError):
    """Throttling (429) or a server-side failure (5xx): retry, after ``retry_after`` if set."""


class ConnectionFailed(UnreachableError, TransientError):
    """No answer: connection refused or reset, TLS failure, timeout."""

    retry_after: float | None = None


class TransientApplyError(ApplyError, TransientError):
    """An apply or delete that failed for a reason worth retrying."""

    def __init__(self, key: object, message: str, retry_after: float | None = None) -> None:
        super().__init__(key, message)
        self.retry_after = retry_after


def status_error(
    where: str, code: int, http_reason: str, body: bytes, retry_after_header: str | None
) -> StatusError:
    """Build the error for an HTTP error response (a ``Status`` body, or anything else)."""
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
    retry_after = _retry_after(retry_after_header, details)
    cls = TransientStatusError if code in TRANSIENT_CODES else StatusError
    return cls(where, code, reason, message, details, retry_after)


def object_error(
    error: StatusError | ConnectionFailed, key: ResourceKey, secrets: Iterable[str] = ()
) -> ApplyError:
    """The error to report for one object; ``secrets`` are masked out of the message."""
    if isinstance(error, ConnectionFailed):
        return TransientApplyError(key, scrub(str(error), secrets))
    message = scrub(error.message, secrets)
    if error.code == 409 and any(
        "FieldManagerConflict" in (c.get("reason"), c.get("type")) for c in error.causes
    ):
        return ConflictError(
            key,
            f"{message} (fields owned by another field manager; sync with force=true to "
            "take them over, as a sync normally does)",
        )
    if error.code == 409:
        return ConflictError(key, f"conflict: {message}")
    if isinstance(error, TransientError):
        return TransientApplyError(
            key, f"{error.code} {error.status_reason}: {message}", error.retry_after
        )
    if error.code in (401, 403):
        return ApplyError(key, f"{error.code} {error.status_reason}: {message}")
    if error.code in (400, 422):
        return ApplyError(key, f"rejected by the API server: {message}")
    return ApplyError(key, f"{error.code} {error.status_reason}: {message}")


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
