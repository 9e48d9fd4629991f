"""Translate dulwich, urllib3, socket and ssh failures into :mod:`gitops.errors`.

The one seam where third-party exceptions become ours: every message names the
credential-free URL and says what failed in words a user can act on, with secrets
redacted from any text a dependency or a remote produced. Nothing here logs or retries.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from dulwich.client import HTTPProxyUnauthorized, HTTPUnauthorized
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository

from gitops.errors import GitopsError, SourceAuthenticationError, SourceError
from gitops.urls import redact

__all__ = ["WantRefusedError", "translate_text", "translating"]

_HOST_KEY = re.compile(
    r"Host key verification failed|host key .* is known|HOST IDENTIFICATION HAS CHANGED"
    r"|Host key for .* has changed",
    re.IGNORECASE,
)
_CHANGED = re.compile(r"HAS CHANGED|has changed", re.IGNORECASE)
_DENIED = re.compile(r"Permission denied|Authentication failed|Too many authentication",
                     re.IGNORECASE)
_BAD_KEY = re.compile(r"Load key|incorrect passphrase|invalid format|bad permissions",
                      re.IGNORECASE)
_UNREACHABLE = re.compile(
    r"Connection refused|timed out|Could not resolve|No route to host|Network is unreachable"
    r"|Name or service not known|Connection reset|Connection closed|Timeout, server"
    r"|Max retries exceeded|NewConnectionError|Temporary failure in name resolution",
    re.IGNORECASE,
)
_NO_REPO = re.compile(
    r"not a git repository|does not appear to be a git repository|repository not exported"
    r"|No such file or directory|not found|access denied",
    re.IGNORECASE,
)
_TLS = re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|SSLError|"
                  r"wrong version number|hostname mismatch", re.IGNORECASE)
_NOT_OUR_REF = re.compile(r"not our ref|want .* not valid|unadvertised object", re.IGNORECASE)


class WantRefusedError(SourceError):
    """The server refused to send an object by SHA (an unknown or unadvertised commit)."""


@contextmanager
def translating(url: str, secrets: Iterable[str], action: str, timeout: float) -> Iterator[None]:
    """Re-raise any failure inside the block as a :class:`~gitops.errors.SourceError`.

    ``action`` says what was being done ("listing refs", "fetching main"); gitops
    errors pass through unchanged.
    """
    try:
        yield
    except GitopsError:
        raise
    except (HTTPUnauthorized, HTTPProxyUnauthorized) as exc:
        who = "proxy" if isinstance(exc, HTTPProxyUnauthorized) else "server"
        raise SourceAuthenticationError(
            url, f"{action}: the {who} refused the credentials, or none were given (HTTP 401)"
        ) from exc
    except NotGitRepository as exc:
        raise SourceError(url, f"{action}: no Git repository at this URL") from exc
    except TimeoutError as exc:
        raise SourceError(url, f"{action}: no answer within {timeout:g}s (timed out)") from exc
    except subprocess.SubprocessError as exc:
        raise SourceError(url, f"{action}: {_clean(str(exc), secrets)}") from exc
    except GitProtocolError as exc:
        raise _from_protocol_error(url, secrets, action, timeout, exc) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise SourceError(url, f"{action}: cannot connect: {_clean(reason, secrets)}") from exc
    except (ValueError, KeyError, AssertionError) as exc:
        # dulwich raises these for a malformed or unexpected server response
        raise SourceError(
            url, f"{action}: unexpected answer from the server: {_clean(str(exc), secrets)}"
        ) from exc


def _from_protocol_error(
    url: str, secrets: Iterable[str], action: str, timeout: float, exc: GitProtocolError
) -> SourceError:
    text = _clean(str(exc), secrets)
    cause = exc.__cause__ or exc.__context__
    detail = f"{text} ({_clean(str(cause), secrets)})" if cause is not None else text
    if isinstance(exc, HangupException) and exc.stderr_lines:
        return _from_ssh(url, action, text)
    if _TLS.search(detail):
        return SourceError(url, f"{action}: TLS verification failed ({_tls_reason(detail)}); "
                                "pass ca_bundle=... for a private CA")
    if _NOT_OUR_REF.search(text):
        return WantRefusedError(url, f"{action}: the server refused the object: {_short(text)}")
    if isinstance(cause, TimeoutError) or "timed out" in detail.lower():
        return SourceError(url, f"{action}: no answer within {timeout:g}s (timed out)")
    if _UNREACHABLE.search(detail):
        return SourceError(url, f"{action}: cannot connect: {_os_reason(detail)}")
    if _NO_REPO.search(text):
        return SourceError(url, f"{action}: no Git repository at this URL ({_short(text)})")
    if isinstance(exc, HangupException):
        return SourceError(url, f"{action}: the server closed the connection")
    return SourceError(url, f"{action}: {_short(detail)}")


def _from_ssh(url: str, action: str, stderr: str) -> SourceError:
    """Classify what ssh (or the remote shell) printed before hanging up."""
    if _HOST_KEY.search(stderr):
        if _CHANGED.search(stderr):
            return SourceAuthenticationError(
                url, f"{action}: the SSH host key CHANGED since it was recorded in known_hosts; "
                     "refusing to connect"
            )
        return SourceAuthenticationError(
            url, f"{action}: unknown SSH host key: the host is not in known_hosts (add it with "
                 "ssh-keyscan to the known_hosts file, or pass insecure_ignore_host_key=True)"
        )
    if _BAD_KEY.search(stderr):
        return SourceAuthenticationError(url, f"{action}: the SSH key cannot be used: {_short(stderr)}")
    if _DENIED.search(stderr):
        return SourceAuthenticationError(url, f"{action}: SSH authentication refused: {_short(stderr)}")
    if _UNREACHABLE.search(stderr):
        return SourceError(url, f"{action}: cannot connect: {_short(stderr)}")
    if _NO_REPO.search(stderr):
        return SourceError(url, f"{action}: no Git repository at this URL ({_short(stderr)})")
    return SourceError(url, f"{action}: {_short(stderr)}")


def _tls_reason(text: str) -> str:
    match = re.search(r"certificate verify failed: ([^()'\"]+)", text)
    if match:
        return f"certificate verify failed: {match.group(1).strip()}"
    match = re.search(r"\[SSL[^\]]*\] ([^()'\"]+)", text)
    return match.group(1).strip() if match else _short(text, 120)


def _os_reason(text: str) -> str:
    """The operating system's words ("Connection refused") out of urllib3's long story."""
    match = re.search(r"\[Errno -?\d+\] ([^()'\"]+)", text)
    return match.group(1).strip() if match else _short(text)


def translate_text(text: str, secrets: Iterable[str]) -> str:
    """A remote's words for a message: secrets redacted, one short line."""
    return _short(_clean(text, secrets))


def _clean(text: str, secrets: Iterable[str]) -> str:
    return redact(text, list(secrets))


def _short(text: str, limit: int = 300) -> str:
    """One line: remote stderr can be long and multi-line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = "; ".join(lines) if lines else text.strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"
