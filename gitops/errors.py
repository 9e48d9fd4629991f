"""The one exception tree of gitops.

Every error names the input at fault (file, URL or resource) in its message, so a
caller can print ``str(exc)`` as one line and a user knows what to fix. Errors raised
by dependencies (PyYAML, dulwich, urllib3, kubernetes) are translated at the seam
with ``raise ... from exc`` and never leak to callers.

::

    GitopsError
    ├── InputError                 the user's input is wrong; retrying will not help
    │   ├── InvalidURLError        a source/target URL that cannot be parsed
    │   ├── ManifestError          a manifest file or document is invalid (names file + doc)
    │   └── EmptySourceError       an empty desired set with prune, without allow_empty
    ├── PluginError                unknown scheme, or a plugin that fails to import
    ├── SourceError                a source could not resolve or fetch (names the URL)
    │   ├── RevisionNotFoundError  unknown branch, tag, commit or path
    │   ├── SourceAuthenticationError   (also an AuthenticationError)
    │   └── VerificationError      signature or digest verification failed
    ├── TargetError                a target refused or failed an operation (``.url``)
    │   ├── ApplyError             one resource could not be applied (names the resource)
    │   │   └── ConflictError      the object is owned by someone else
    │   ├── UnreachableError       the target cannot be reached
    │   └── TargetAuthenticationError   (also an AuthenticationError)
    ├── AuthenticationError        credentials missing or refused, source or target alike
    ├── TransientError             a failure worth retrying (``.retry_after``: timeouts, 429, 5xx)
    └── NotSupportedError          a declared capability is missing

Outside the tree, :class:`SyncInterrupted` is the ``KeyboardInterrupt`` (or task
cancellation) that stopped a sync, carrying the partial result.

``TransientError`` is a mix-in: a target raises e.g. ``class Throttled(ApplyError,
TransientError)`` and the engine retries it with backoff, after ``retry_after`` seconds
when the error says so. ``AuthenticationError`` is the one class to catch for refused
credentials, whoever refused them; sources raise :class:`SourceAuthenticationError`,
targets :class:`TargetAuthenticationError`. Every :class:`TargetError` carries the target's
credential-free ``url`` (``""`` when the raiser could not know it); the engine fills it
in for errors that reach it without one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gitops.model import SyncResult

__all__ = [
    "ApplyError",
    "AuthenticationError",
    "ConflictError",
    "EmptySourceError",
    "GitopsError",
    "InputError",
    "InvalidURLError",
    "ManifestError",
    "NotSupportedError",
    "PluginError",
    "RevisionNotFoundError",
    "SourceAuthenticationError",
    "SourceError",
    "SyncInterrupted",
    "TargetAuthenticationError",
    "TargetError",
    "TransientError",
    "UnreachableError",
    "VerificationError",
]


class GitopsError(Exception):
    """Root of every error gitops raises on purpose."""


class InputError(GitopsError):
    """The caller's input is wrong; retrying will not help."""


class InvalidURLError(InputError):
    """A source or target URL that cannot be parsed."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")


class ManifestError(InputError):
    """A manifest file, or one document in it, is invalid.

    ``path`` is the file relative to the artifact root; ``document`` the zero-based
    index of the YAML document in it (``None`` when the whole file is at fault).
    """

    def __init__(self, path: str, message: str, document: int | None = None) -> None:
        self.path = path
        self.document = document
        self.reason = message
        where = path if document is None else f"{path} (document {document})"
        super().__init__(f"{where}: {message}")


class EmptySourceError(InputError):
    """The source renders no resources while pruning is on and allow_empty is off."""


class PluginError(GitopsError):
    """A URL scheme no plugin handles, or a plugin that cannot be loaded."""


class SourceError(GitopsError):
    """A source could not resolve or fetch. ``url`` is credential-free."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.reason = message
        super().__init__(f"{url}: {message}")


class RevisionNotFoundError(SourceError):
    """An unknown branch, tag, commit, digest or subpath."""


class VerificationError(SourceError):
    """A signature or digest did not verify; nothing from this revision is used."""


class TargetError(GitopsError):
    """A target refused or failed an operation. ``url`` is the target's, credential-free."""

    url: str = ""

    def __init__(self, message: str = "", *, url: str = "") -> None:
        super().__init__(message)
        if url:
            self.url = url


class ApplyError(TargetError):
    """One resource could not be applied or deleted. ``key`` names it."""

    def __init__(self, key: object, message: str, *, url: str = "") -> None:
        self.key = key
        self.reason = message
        super().__init__(f"{key}: {message}", url=url)


class ConflictError(ApplyError):
    """The object exists and is owned by another inventory or field manager."""


class UnreachableError(TargetError):
    """The target (an API server, a directory) cannot be reached."""


class AuthenticationError(GitopsError):
    """Credentials were missing or refused, by a source or a target: catch this one.

    ``url`` names the endpoint (credential-free). Raise a concrete flavour:
    :class:`SourceAuthenticationError` or :class:`TargetAuthenticationError`.
    """

    url: str = ""
    reason: str = ""


class SourceAuthenticationError(SourceError, AuthenticationError):
    """A source's credentials were missing or refused."""


class TargetAuthenticationError(TargetError, AuthenticationError):
    """A target's credentials were missing or refused."""

    def __init__(self, url: str, message: str) -> None:
        self.reason = message
        super().__init__(f"{url}: {message}", url=url)


class TransientError(GitopsError):
    """A failure that may succeed when retried (timeout, throttling, 5xx).

    ``retry_after`` is the delay in seconds the other side asked for, or None.
    """

    retry_after: float | None = None


class NotSupportedError(GitopsError):
    """The plugin does not have the capability that was asked for."""


class SyncInterrupted(KeyboardInterrupt):
    """A sync stopped by Ctrl-C (or cancellation), after cleaning up.

    The resource in flight was finished or abandoned, the remaining changes were not
    attempted, and the inventory still owns everything the sync could have created.
    ``result`` says what was applied and what was not. A ``KeyboardInterrupt``, so
    code that lets Ctrl-C end the program keeps doing so.
    """

    def __init__(self, result: SyncResult) -> None:
        super().__init__("sync interrupted")
        self.result = result
