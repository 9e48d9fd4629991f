"""The seam to one Kubernetes API server: kubeconfig, HTTP, timeouts, QPS, retries, errors.

The official ``kubernetes`` client is used for what it does best and nothing more: it
reads the kubeconfig (contexts, certificates, exec plugins, token refresh) and builds
the TLS-configured connection pool. Requests go through that pool as plain JSON, so
responses are never turned into the client's models, every call has a timeout, and no
error type of ``kubernetes`` or ``urllib3`` leaves this module: they become
:class:`~gitops.targets.kubernetes.errors.StatusError` or
:class:`~gitops.targets.kubernetes.errors.ConnectionFailed`. Request and response
bodies are never logged (they may hold Secrets).
"""

from __future__ import annotations

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
from typing import Any
from urllib.parse import urlencode

from gitops import __version__
from gitops.errors import InvalidURLError, TargetError, TransientError
from gitops.targets.kubernetes.errors import ConnectionFailed, StatusError, status_error

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

__all__ = ["INSTALL_HINT", "KubeClient", "RateLimiter", "WatchStream", "load_api_client"]

log = logging.getLogger("gitops.targets.kubernetes")

JSON = "application/json"
APPLY_PATCH = "application/apply-patch+yaml"  # a JSON body is valid YAML
_MAX_BACKOFF = 10.0
_POOL_SIZE = 32


def load_api_client(url: str, kubeconfig: str | None, context: str | None) -> Any:
    """A ``kubernetes.client.ApiClient`` for ``context`` (None: the current one).

    ``kubeconfig`` (or ``$KUBECONFIG``, a ``:``-separated list, or ``~/.kube/config``) is
    read at call time; inside a pod without a kubeconfig the in-cluster service account is
    used. Raises InvalidURLError for an unknown context, TargetError for an unusable
    kubeconfig.
    """
    client, config = _client, _config
    path = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    configuration = client.Configuration()
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
            if context is not None:
                contexts, _ = config.list_kube_config_contexts(config_file=path)
                names = sorted(str(c.get("name")) for c in contexts or ())
                if context not in names:
                    raise InvalidURLError(
                        url, f"no context {context!r} in kubeconfig {path} "
                        f"(contexts: {', '.join(names) or 'none'})"
                    )
            config.load_kube_config(
                config_file=path, context=context, client_configuration=configuration,
                persist_config=False,
            )
    except config.ConfigException as exc:
        raise TargetError(f"kubeconfig {path} ({url}): {exc}") from exc
    except OSError as exc:
        raise TargetError(f"kubeconfig {path} ({url}): {exc.strerror or exc}") from exc
    configuration.connection_pool_maxsize = _POOL_SIZE
    return client.ApiClient(configuration)


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

    def __init__(self, response: Any, where: str) -> None:
        self._response = response
        self._where = where
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
                raise ConnectionFailed(f"{self._where}: watch interrupted: {exc}") from exc
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        shutdown = getattr(self._response, "shutdown", None)  # urllib3 >= 2.3: unblocks a read
        # RuntimeError: the stream ended and urllib3 already returned the connection
        with contextlib.suppress(urllib3.exceptions.HTTPError, OSError, RuntimeError):
            if shutdown is not None:
                shutdown()
        with contextlib.suppress(urllib3.exceptions.HTTPError, OSError, RuntimeError):
            self._response.release_conn()


class KubeClient:
    """JSON requests to one API server through an ``ApiClient``'s connection pool.

    Every request has a connect and a read timeout and waits for the optional rate
    limiter. ``request(..., retry=True)`` retries throttling, 5xx and connection
    failures ``retries`` times with exponential backoff, honouring ``Retry-After``;
    with ``retry=False`` they are raised (as ``TransientError`` subclasses) for the
    caller to retry. ``counts`` tallies requests by verb (``list``, ``patch``,
    ``patch dry-run``...).
    """

    def __init__(
        self,
        api_client: Any,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        qps: float | None = None,
        burst: int | None = None,
        retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        configuration = api_client.configuration
        self.api_client = api_client
        self.server = str(configuration.host).rstrip("/")
        self._configuration = configuration
        self._pool: Any = api_client.rest_client.pool_manager
        self._headers = {str(k): str(v) for k, v in dict(api_client.default_headers).items()}
        self._headers["User-Agent"] = _user_agent()
        self._headers["Accept"] = JSON
        self.timeout, self.connect_timeout, self.retries = timeout, connect_timeout, retries
        self._limiter = RateLimiter(qps, burst, sleep=sleep) if qps else None
        self._sleep = sleep
        self._counts_lock = threading.Lock()
        self.counts: Counter[str] = Counter()

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
        verb: str = "",
    ) -> Any:
        """Send one request and return the decoded JSON body.

        Raises StatusError (TransientStatusError for 429/5xx) or ConnectionFailed.
        """
        delay = 0.2
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._send(method, path, query, body, content_type, verb)
            except (ConnectionFailed, StatusError) as exc:
                retry_after = getattr(exc, "retry_after", None)
                if not retry or not isinstance(exc, TransientError) or attempt > self.retries:
                    raise
                self._sleep(min(retry_after if retry_after is not None else delay, _MAX_BACKOFF))
                delay = min(delay * 2, _MAX_BACKOFF)

    def watch(
        self, path: str, query: Sequence[tuple[str, str]], timeout_seconds: int
    ) -> WatchStream:
        """Open a watch (``watch=true``); the server ends it after ``timeout_seconds``."""
        query = [*query, ("watch", "true"), ("timeoutSeconds", str(timeout_seconds))]
        where = f"{self.server}: GET {path}"
        response = self._open("GET", path, query, None, JSON, "watch",
                              read_timeout=timeout_seconds + self.timeout, stream=True)
        return WatchStream(response, where)

    def _send(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: Any,
        content_type: str,
        verb: str,
    ) -> Any:
        response = self._open(method, path, query, body, content_type, verb,
                              read_timeout=self.timeout, stream=False)
        data = response.data
        if not data:
            return {}
        try:
            return json.loads(data)
        except ValueError as exc:
            raise TargetError(
                f"{self.server}: {method} {path}: the answer is not JSON ({exc})"
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
    ) -> Any:
        """Send the request; return the urllib3 response of a 2xx, raise otherwise."""
        if self._limiter is not None:
            self._limiter.acquire()
        with self._counts_lock:
            self.counts[verb or method.lower()] += 1
        url = self.server + path + (f"?{urlencode(list(query))}" if query else "")
        headers = dict(self._headers)
        headers.update(self._auth_headers())
        payload = None
        if body is not None:
            headers["Content-Type"] = content_type
            text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
            if content_type == APPLY_PATCH:
                text = yaml_safe(text)
            payload = text.encode()
        where = f"{self.server}: {method} {path}"
        log.debug("%s %s", method, path)
        try:
            response = self._pool.request(
                method, url, body=payload, headers=headers, retries=False,
                timeout=urllib3.Timeout(connect=self.connect_timeout, read=read_timeout),
                preload_content=not stream, redirect=False,
            )
        except urllib3.exceptions.NewConnectionError as exc:  # a TimeoutError subclass
            raise ConnectionFailed(
                f"{self.server}: API server unreachable ({_reason(exc)})"
            ) from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise ConnectionFailed(f"{where}: no answer in time ({_reason(exc)})") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ConnectionFailed(
                f"{self.server}: API server unreachable ({_reason(exc)})"
            ) from exc
        if 200 <= response.status < 300:
            return response
        data = response.data if not stream else response.read()
        if stream:
            response.release_conn()
        raise status_error(where, response.status, response.reason or "", data or b"",
                           response.headers.get("Retry-After"))

    def _auth_headers(self) -> dict[str, str]:
        """Authorization from the configuration (refreshing exec/OIDC tokens as needed)."""
        headers: dict[str, str] = {}
        settings: Mapping[str, Any] = self._configuration.auth_settings() or {}
        for setting in settings.values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[str(setting["key"])] = str(setting["value"])
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


def _user_agent() -> str:
    return f"gitops/{__version__}"
