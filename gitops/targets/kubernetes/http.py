"""The seam to one Kubernetes API server: kubeconfig, HTTP, timeouts, QPS, retries, errors.

The official ``kubernetes`` client is used for what it does best and nothing more: it
reads the kubeconfig (contexts, certificates, exec plugins, token refresh) and builds
the TLS-configured connection pool. Requests go through that pool as plain JSON, so
responses are never turned into the client's models, every call has a timeout, and no
error type of ``kubernetes`` or ``urllib3`` leaves this module: they become
:class:`~gitops.targets.kubernetes.errors.StatusError`,
:class:`~gitops.targets.kubernetes.errors.ConnectionFailed` (unreachable) or
:class:`~gitops.targets.kubernetes.errors.NoAnswer` (read timeout).

An API server that cannot be reached is given up on quickly: connection failures are
retried only for ``unreachable_timeout`` seconds in all (not ``retries`` times with
backoff), and for as long again afterwards every request fails at once without touching
the network, so a sync of a thousand objects against a dead server ends in seconds.
Request and response bodies are never logged (they may hold Secrets), and credentials
never appear in an error.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit, urlunsplit

from gitops import __version__
from gitops.errors import InvalidURLError, TargetError, TransientError
from gitops.targets.kubernetes.errors import (
    ConnectionFailed,
    NoAnswer,
    StatusError,
    TransportError,
    scrub,
    status_error,
)

INSTALL_HINT = "pip install 'gitops-sdk[kubernetes]'"

try:
    import urllib3
    import urllib3.exceptions

    # untyped at the seam: the client's Any stays in this module
    _client: Any = importlib.import_module("kubernetes.client")
    _config: Any = importlib.import_module("kubernetes.config")
except ImportError as exc:
    raise ImportError(
        f"the Kubernetes target needs the kubernetes package: {INSTALL_HINT}"
    ) from exc

__all__ = [
    "INSTALL_HINT",
    "KubeClient",
    "Loaded",
    "RateLimiter",
    "WatchStream",
    "load_api_client",
    "server_url",
]

log = logging.getLogger("gitops.targets.kubernetes")

JSON = "application/json"
APPLY_PATCH = "application/apply-patch+yaml"  # a JSON body is valid YAML
_MAX_BACKOFF = 10.0
_MAX_RECONNECTS = 12  # within unreachable_timeout, whatever ``sleep`` does
_POOL_SIZE = 32
_AUTH_REUSE = 1.0  # seconds the Authorization headers are reused


class Loaded(NamedTuple):
    """What :func:`load_api_client` built: the client, and the context it used."""

    api_client: Any
    context: str | None  # None: in-cluster service account


def load_api_client(url: str, kubeconfig: str | None, context: str | None) -> Loaded:
    """A ``kubernetes.client.ApiClient`` for ``context`` (None: the current one).

    ``kubeconfig`` (or ``$KUBECONFIG``, a ``:``-separated list, or ``~/.kube/config``) is
    read at call time; inside a pod without a kubeconfig the in-cluster service account is
    used. Raises InvalidURLError for an unknown context, TargetError for an unusable
    kubeconfig.
    """
    client, config = _client, _config
    path = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    configuration = client.Configuration()
    used: str | None = None
    try:
        if (
            kubeconfig is None
            and context is None
            and not os.environ.get("KUBECONFIG")
            and not os.path.exists(os.path.expanduser(path))
            and os.environ.get("KUBERNETES_SERVICE_HOST")
        ):
            config.load_incluster_config(client_configuration=configuration)
        else:
            contexts, current = config.list_kube_config_contexts(config_file=path)
            if context is not None:
                names = sorted(str(c.get("name")) for c in contexts or ())
                if context not in names:
                    raise InvalidURLError(
                        url, f"no context {context!r} in kubeconfig {path} "
                        f"(contexts: {', '.join(names) or 'none'})"
                    )
            used = context if context is not None else str((current or {}).get("name") or "")
            config.load_kube_config(
                config_file=path, context=context, client_configuration=configuration,
                persist_config=False,
            )
    except config.ConfigException as exc:
        raise TargetError(f"kubeconfig {path} ({url}): {exc}", url=url) from exc
    except OSError as exc:
        raise TargetError(f"kubeconfig {path} ({url}): {exc.strerror or exc}", url=url) from exc
    configuration.connection_pool_maxsize = _POOL_SIZE
    return Loaded(client.ApiClient(configuration), used)


def server_url(host: str) -> str:
    """The API server's URL without userinfo (a kubeconfig never needs it there)."""
    parts = urlsplit(host.rstrip("/"))
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class RateLimiter:
    """A token bucket: at most ``qps`` requests a second on average, ``burst`` at once."""

    def __init__(
        self,
        qps: float,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.qps = qps
        self.burst = float(burst if burst is not None else max(1, int(qps)))
        self._tokens = self.burst
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is available; return the time slept."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


class WatchStream:
    """One watch request: iterate to get events (dicts); ``close()`` from any thread."""

    def __init__(self, response: Any, where: str, url: str = "") -> None:
        self._response = response
        self._where = where
        self._url = url
        self._closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        buffer = b""
        try:
            for chunk in self._response.stream(65536, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        event = json.loads(line)
                        if isinstance(event, dict):
                            yield event
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if not self._closed:
                raise ConnectionFailed(f"{self._where}: watch interrupted: {_reason(exc)}",
                                       sent=True, url=self._url) from exc
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        shutdown = getattr(self._response, "shutdown", None)  # urllib3 >= 2.3: unblocks a read
        # RuntimeError, ValueError: the stream ended and urllib3 already returned the
        # connection (or never had one to shut down)
        ended = (urllib3.exceptions.HTTPError, OSError, RuntimeError, ValueError)
        with contextlib.suppress(*ended):
            if shutdown is not None:
                shutdown()
        with contextlib.suppress(*ended):
            # closed, not released: a connection shut for reading mid-stream is no use to
            # the pool, and released it kept its socket (and the server's watch) open
            self._response.close()


class KubeClient:
    """JSON requests to one API server through an ``ApiClient``'s connection pool.

    Every request has a connect and a read timeout and waits for the optional rate
    limiter. ``request(..., retry=True)`` retries throttling, 5xx and read timeouts
    ``retries`` times with exponential backoff, honouring ``Retry-After``; with
    ``retry=False`` they are raised (as ``TransientError`` subclasses) for the caller to
    retry. Connection failures are retried whatever ``retry`` says, but only for
    ``unreachable_timeout`` seconds (and a request that may have reached the server only
    when ``resend``); then :class:`ConnectionFailed` is raised, and for as long again
    every request fails at once. ``url`` (the target's) goes into every error; ``counts``
    tallies requests by verb (``list``, ``patch``, ``patch dry-run``...).
    """

    def __init__(
        self,
        api_client: Any,
        *,
        url: str = "",
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        unreachable_timeout: float = 5.0,
        qps: float | None = None,
        burst: int | None = None,
        retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        configuration = api_client.configuration
        self.api_client = api_client
        self.server = server_url(str(configuration.host))
        self.url = url or self.server
        self._configuration = configuration
        self._pool: Any = api_client.rest_client.pool_manager
        self._headers = {str(k): str(v) for k, v in dict(api_client.default_headers).items()}
        self._headers["User-Agent"] = _user_agent()
        self._headers["Accept"] = JSON
        self.timeout, self.connect_timeout, self.retries = timeout, connect_timeout, retries
        self.unreachable_timeout = unreachable_timeout
        self._limiter = RateLimiter(qps, burst, sleep=sleep) if qps else None
        self._sleep, self._clock = sleep, clock
        self._counts_lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self._down: tuple[float, str] | None = None  # (until, why): failing fast
        self._auth: tuple[float, dict[str, str]] | None = None  # (when, headers)

    # -- requests ----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = JSON,
        retry: bool = True,
        resend: bool = True,
        verb: str = "",
    ) -> Any:
        """Send one request and return the decoded JSON body.

        ``resend``: the request may be sent again after a connection broke while it was
        in flight (true of reads, server-side apply, PUT with a resourceVersion, DELETE
        with a uid precondition; not of a POST). Raises StatusError (TransientStatusError
        for 429/5xx), NoAnswer (read timeout) or ConnectionFailed (unreachable).
        """
        self._check_down()
        delay, retried = 0.2, 0
        reconnect, reconnects = 0.1, 0
        deadline = self._clock() + self.unreachable_timeout
        while True:
            try:
                return self._send(method, path, query, body, content_type, verb,
                                  deadline if reconnects else None)
            except ConnectionFailed as exc:
                now = self._clock()
                reconnects += 1
                if (exc.sent and not resend) or now >= deadline or reconnects > _MAX_RECONNECTS:
                    if not exc.sent:
                        self._mark_down(now, str(exc))
                    raise
                self._sleep(min(reconnect, deadline - now))
                reconnect = min(reconnect * 2, 1.0)
            except (NoAnswer, StatusError) as exc:
                retried += 1
                if not retry or not isinstance(exc, TransientError) or retried > self.retries:
                    raise
                retry_after = exc.retry_after
                self._sleep(min(retry_after if retry_after is not None else delay, _MAX_BACKOFF))
                delay = min(delay * 2, _MAX_BACKOFF)

    def watch(
        self, path: str, query: Sequence[tuple[str, str]], timeout_seconds: int
    ) -> WatchStream:
        """Open a watch (``watch=true``); the server ends it after ``timeout_seconds``."""
        query = [*query, ("watch", "true"), ("timeoutSeconds", str(timeout_seconds))]
        where = f"{self.server}: GET {path}"
        self._check_down()
        response = self._open("GET", path, query, None, JSON, "watch",
                              read_timeout=timeout_seconds + self.timeout, stream=True,
                              deadline=None)
        return WatchStream(response, where, self.url)

    def _send(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: Any,
        content_type: str,
        verb: str,
        deadline: float | None,
    ) -> Any:
        response = self._open(method, path, query, body, content_type, verb,
                              read_timeout=self.timeout, stream=False, deadline=deadline)
        data = response.data
        if not data:
            return {}
        try:
            return json.loads(data)
        except ValueError as exc:
            raise TargetError(
                f"{self.server}: {method} {path}: the answer is not JSON ({exc})", url=self.url
            ) from exc

    def _open(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: Any,
        content_type: str,
        verb: str,
        *,
        read_timeout: float,
        stream: bool,
        deadline: float | None,
    ) -> Any:
        """Send the request; return the urllib3 response of a 2xx, raise otherwise."""
        if self._limiter is not None:
            self._limiter.acquire()
        with self._counts_lock:
            self.counts[verb or method.lower()] += 1
        url = self.server + path + (f"?{urlencode(list(query))}" if query else "")
        headers = dict(self._headers)
        auth = self._auth_headers()
        headers.update(auth)
        payload = None
        if body is not None:
            headers["Content-Type"] = content_type
            text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
            if content_type == APPLY_PATCH:
                text = yaml_safe(text)
            payload = text.encode()
        where = f"{self.server}: {method} {path}"
        connect = self.connect_timeout
        if deadline is not None:  # a retry never waits past the deadline to connect
            connect = max(0.1, min(connect, deadline - self._clock()))
        log.debug("%s %s", method, path)
        try:
            response = self._pool.request(
                method, url, body=payload, headers=headers, retries=False,
                timeout=urllib3.Timeout(connect=connect, read=read_timeout),
                preload_content=not stream, redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise self._transport_error(exc, where, auth) from exc
        except OSError as exc:
            raise ConnectionFailed(
                f"{self.server}: API server unreachable ({self._clean(_reason(exc), auth)})",
                sent=True, url=self.url,
            ) from exc
        self._down = None
        if 200 <= response.status < 300:
            return response
        data = response.data if not stream else response.read()
        if stream:
            response.release_conn()
        raise status_error(where, response.status, response.reason or "", data or b"",
                           response.headers.get("Retry-After"), url=self.url,
                           credentials=_credentials(auth))

    def _transport_error(
        self, exc: urllib3.exceptions.HTTPError, where: str, auth: Mapping[str, str]
    ) -> TransportError:
        """A urllib3 failure as ConnectionFailed (unreachable) or NoAnswer (read timeout)."""
        reason = self._clean(_reason(exc), auth)
        if isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
            # refused, no route, DNS, connect timeout: the request was never sent
            return ConnectionFailed(f"{self.server}: API server unreachable ({reason})",
                                    sent=False, url=self.url)
        if isinstance(exc, urllib3.exceptions.TimeoutError):
            return NoAnswer(f"{where}: no answer in time ({reason})", url=self.url)
        if isinstance(exc, urllib3.exceptions.SSLError):
            return ConnectionFailed(f"{self.server}: TLS failed ({reason})", sent=True,
                                    url=self.url)
        return ConnectionFailed(f"{self.server}: API server unreachable ({reason})",
                                sent=True, url=self.url)

    def _check_down(self) -> None:
        """Fail at once while the server was found unreachable a moment ago."""
        down = self._down
        if down is not None:
            until, why = down
            now = self._clock()
            if now < until:
                raise ConnectionFailed(f"{why}; not retried for another {until - now:.1f}s",
                                       url=self.url)
            self._down = None

    def _mark_down(self, now: float, why: str) -> None:
        self._down = (now + self.unreachable_timeout, why)

    @staticmethod
    def _clean(text: str, auth: Mapping[str, str]) -> str:
        """``text`` without the credentials this client sends."""
        return scrub(text, _credentials(auth))

    def _auth_headers(self) -> dict[str, str]:
        """Authorization from the configuration (refreshing exec/OIDC tokens as needed).

        Asked of the configuration at most once a second: its refresh hook re-reads the
        kubeconfig's settings each time (half a millisecond per request), and renews
        tokens minutes before they expire, so a second's reuse never sends a stale one.
        """
        now = self._clock()
        cached = self._auth
        if cached is not None and 0 <= now - cached[0] < _AUTH_REUSE:
            return cached[1]
        headers: dict[str, str] = {}
        settings: Mapping[str, Any] = self._configuration.auth_settings() or {}
        for setting in settings.values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[str(setting["key"])] = str(setting["value"])
        self._auth = (now, headers)
        return headers

    def close(self) -> None:
        """Close the pooled connections (the ApiClient may be shared: it is left open)."""
        with contextlib.suppress(urllib3.exceptions.HTTPError, OSError):
            self._pool.clear()


# Characters JSON leaves raw but a YAML parser folds as line breaks (U+2028, U+2029, NEL) or
# refuses (DEL, C1 controls, BOM, non-characters). They only occur inside JSON strings.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def yaml_safe(text: str) -> str:
    """JSON text that a YAML parser reads back as the same data (apply bodies are YAML)."""
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _reason(exc: BaseException) -> str:
    """A short cause without the connection object's repr (urllib3 puts it first)."""
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    _, sep, tail = text.partition("): ")
    return tail if sep else text


def _credentials(auth: Mapping[str, str]) -> list[str]:
    """The secrets in Authorization headers: as sent, the token alone, basic auth decoded."""
    secrets: list[str] = []
    for value in auth.values():
        scheme, _, credential = value.partition(" ")
        secrets += [value, credential or scheme]
        if scheme.lower() == "basic" and credential:
            with contextlib.suppress(ValueError):
                decoded = base64.b64decode(credential, validate=True).decode()
                secrets += [decoded, decoded.partition(":")[2]]
    return sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)


def _user_agent() -> str:
    return f"gitops/{__version__}"
