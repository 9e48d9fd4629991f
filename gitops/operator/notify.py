"""Notifications: JSON posted to webhook URLs when an application's sync or health changes.

:meth:`Notifier.notify` never blocks a reconcile: it appends to a bounded in-memory queue
(and counts what overflows) and returns. One sender thread posts each event to every URL
as ``{"app", "reason", "revision", "message", "time", "text", "coalesced"}``; ``text`` is
a one-line summary, so a Slack-style incoming webhook shows it as the message.

Per URL, delivery is sequential (one event in flight, retried on connection errors, 5xx
and 429 with exponential backoff or the server's ``Retry-After``, up to ``attempts``) and
rate-limited by a token bucket (``rate`` events a second, ``burst`` at once). Events that
wait — behind the limit or a retry — are **coalesced per application**: a newer event of
the same application replaces the one still waiting, and the one sent says in
``coalesced`` how many it replaced. Waiting events of *other* applications are kept, up
to ``queue_size`` per URL; beyond that the oldest is dropped and counted.

Webhook URLs are secrets (Slack's carry their token in the path): logs, errors and the
repr show a URL only as ``scheme://host[:port]`` and its position in the list.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from gitops.errors import InvalidURLError
from gitops.urls import scrub, split_authority, userinfo_credentials

__all__ = ["Notification", "Notifier", "NotifierStats", "summary"]

log = logging.getLogger(__name__)

_MAX_MESSAGE = 500  # characters of the message in the one-line text
_SHA_RE = re.compile(r"\b([0-9a-f]{12})[0-9a-f]{28,52}\b")


@dataclass(frozen=True)
class Notification:
    """One event about one application (``app`` is ``namespace/name``)."""

    app: str
    reason: str
    revision: str | None
    message: str
    time: datetime

    def payload(self, coalesced: int = 0) -> dict[str, Any]:
        """The JSON document posted for this event."""
        return {
            "app": self.app,
            "reason": self.reason,
            "revision": self.revision,
            "message": self.message,
            "time": self.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "text": summary(self, coalesced),
            "coalesced": coalesced,
        }


def summary(event: Notification, coalesced: int = 0) -> str:
    """A one-line human summary: ``gitops/shop SyncFailed at main@sha1:0123456789ab: msg``."""
    text = f"{event.app} {event.reason}"
    if event.revision:
        revision = _SHA_RE.sub(r"\1", event.revision)  # 12 hex digits say enough
        text += f" at {revision}"
    message = " ".join(event.message.split())
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    if message:
        text += f": {message}"
    if coalesced:
        text += f" ({coalesced} earlier event{'s' if coalesced > 1 else ''} coalesced)"
    return text


@dataclass(frozen=True)
class NotifierStats:
    """Counts of deliveries (one event to one URL) since the notifier started: delivered;
    failed (given up after every attempt); dropped (queue full, notifier closed, not sent
    by ``close``); coalesced (replaced by a newer event of the same application)."""

    delivered: int
    failed: int
    dropped: int
    coalesced: int


@dataclass
class _Delivery:
    event: Notification
    coalesced: int
    attempt: int = 0
    due: float = 0.0


@dataclass
class _Channel:
    """One URL's bucket, waiting events and the delivery in flight (sender thread only)."""

    url: str = field(repr=False)
    shown: str
    tokens: float
    refilled: float
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    pending: OrderedDict[tuple[str, str], tuple[Notification, int]] = field(
        default_factory=OrderedDict)
    current: _Delivery | None = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: the payload must not follow it to another host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _shown(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


class Notifier:
    """Posts notifications to ``urls`` from one background thread; see the module doc.

    ``attempts`` tries per event and URL; ``backoff`` seconds before the first retry,
    doubling; ``timeout`` seconds per post; ``rate`` events a second per URL after a
    ``burst``; ``queue_size`` events waiting at most (in the queue, and per URL);
    ``max_retry_after`` caps a server's ``Retry-After``; drops are logged at most once a
    ``log_period``. Raises InvalidURLError (showing only scheme and host) for a URL that
    is not ``http(s)://host/...`` and ValueError for a bad setting.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        attempts: int = 3,
        backoff: float = 0.5,
        timeout: float = 5.0,
        rate: float = 1.0,
        burst: int = 5,
        queue_size: int = 1000,
        max_retry_after: float = 30.0,
        log_period: float = 60.0,
    ) -> None:
        if attempts < 1 or backoff < 0 or timeout <= 0 or rate <= 0 or burst < 1:
            raise ValueError("notifier: attempts and burst must be >= 1, timeout and rate > 0, "
                             "backoff >= 0")
        if queue_size < 1:
            raise ValueError("notifier: queue_size must be >= 1")
        now = time.monotonic()
        self._channels = [_channel(i, url, float(burst), now) for i, url in enumerate(urls, 1)]
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.rate = rate
        self.burst = burst
        self.queue_size = queue_size
        self.max_retry_after = max_retry_after
        self.log_period = log_period
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._cond = threading.Condition()
        self._inbox: deque[Notification] = deque()
        self._kick = False
        self._closed = False
        self._deadline: float | None = None
        self._counts = {"delivered": 0, "failed": 0, "dropped": 0, "coalesced": 0}
        self._unreported_drops = 0
        self._last_drop_log = float("-inf")
        self._thread: threading.Thread | None = None
        if self._channels:
            self._thread = threading.Thread(target=self._run, name="gitops-notify", daemon=True)
            self._thread.start()

    @property
    def targets(self) -> tuple[str, ...]:
        """The URLs as shown: ``scheme://host[:port]`` only."""
        return tuple(channel.shown for channel in self._channels)

    def stats(self) -> NotifierStats:
        """Counts of delivered, failed, dropped and coalesced events so far."""
        with self._cond:
            return NotifierStats(**self._counts)

    def notify(self, app: str, reason: str, revision: str | None, message: str, *,
               at: datetime | None = None) -> None:
        """Queue one event for every URL and return at once (never blocks, never raises).

        ``reason`` is e.g. ``SyncSucceeded``, ``SyncFailed``, ``DriftDetected``,
        ``HealthDegraded``; ``at`` (the event's ``time``) defaults to now. An event that
        finds the queue full, or the notifier closed, is dropped and counted.
        """
        if not self._channels:
            return
        event = Notification(app, reason, revision or None,  # "" is no revision: null
                             scrub(str(message)), at or datetime.now(UTC))
        with self._cond:
            if self._closed or len(self._inbox) >= self.queue_size:
                report = self._dropped(len(self._channels), "the notifier is closed"
                                       if self._closed else "the notification queue is full")
            else:
                report = None
                self._inbox.append(event)
                self._kick = True
                self._cond.notify()
        if report:
            log.warning("%s", report)

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting events and deliver what can be delivered within ``timeout`` seconds.

        Events still waiting then are dropped (counted and logged). Idempotent.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._deadline = time.monotonic() + max(0.0, timeout)
            self._kick = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(max(0.0, timeout) + 0.5)

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Notifier(targets={list(self.targets)!r}, attempts={self.attempts}, "
                f"rate={self.rate}, burst={self.burst})")

    # -- counting ------------------------------------------------------------------

    def _dropped(self, count: int, why: str, *, force: bool = False) -> str | None:
        """Count drops (the caller holds ``_cond``); the line to log, once per period."""
        self._counts["dropped"] += count
        self._unreported_drops += count
        now = time.monotonic()
        if self._unreported_drops and (force or now - self._last_drop_log >= self.log_period):
            report = f"{self._unreported_drops} notification(s) dropped: {why}"
            self._unreported_drops = 0
            self._last_drop_log = now
            return report
        return None

    def _drop(self, count: int, why: str, *, force: bool = False) -> None:
        with self._cond:
            report = self._dropped(count, why, force=force)
        if report:
            log.warning("%s", report)

    def _count(self, name: str, count: int = 1) -> None:
        with self._cond:
            self._counts[name] += count

    # -- the sender thread -----------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # never expected; a dead sender must at least be visible
            log.exception("the notification sender stopped")

    def _loop(self) -> None:
        while True:
            self._absorb()
            now = time.monotonic()
            deadline = self._deadline
            if deadline is not None and (now >= deadline or self._idle()):
                break
            for channel in self._channels:
                self._step(channel, now)
            self._absorb()
            with self._cond:
                if self._kick or self._inbox:
                    self._kick = False
                    continue
                now = time.monotonic()
                wake = self._next_wake(now)
                if self._deadline is not None:
                    if self._idle():
                        break
                    wake = min(wake, self._deadline) if wake is not None else self._deadline
                self._cond.wait(None if wake is None else max(0.0, wake - now))
                self._kick = False
        self._abandon()

    def _absorb(self) -> None:
        """Move queued events to every URL's waiting list (coalescing per application and
        reason: a newer SyncFailed replaces a waiting SyncFailed, never a DriftDetected)."""
        with self._cond:
            events = list(self._inbox)
            self._inbox.clear()
        for event in events:
            for channel in self._channels:
                earlier = channel.pending.pop((event.app, event.reason), None)
                coalesced = 0
                if earlier is not None:
                    coalesced = earlier[1] + 1
                    self._count("coalesced")
                channel.pending[(event.app, event.reason)] = (event, coalesced)
                if len(channel.pending) > self.queue_size:
                    channel.pending.popitem(last=False)
                    self._drop(1, f"too many waiting for {channel.shown}")

    def _idle(self) -> bool:
        return not self._inbox and all(
            channel.current is None and not channel.pending for channel in self._channels)

    def _next_wake(self, now: float) -> float | None:
        wakes = []
        for channel in self._channels:
            if channel.current is not None:
                wakes.append(channel.current.due)
            elif channel.pending:
                wakes.append(now + max(0.0, (1.0 - channel.tokens) / self.rate))
        return min(wakes, default=None)

    def _step(self, channel: _Channel, now: float) -> None:
        channel.tokens = min(float(self.burst),
                             channel.tokens + (now - channel.refilled) * self.rate)
        channel.refilled = now
        if channel.current is None and channel.pending and channel.tokens >= 1.0:
            _, (event, coalesced) = channel.pending.popitem(last=False)
            channel.tokens -= 1.0
            channel.current = _Delivery(event, coalesced, due=now)
        delivery = channel.current
        if delivery is not None and delivery.due <= now:
            self._attempt(channel, delivery)

    def _attempt(self, channel: _Channel, delivery: _Delivery) -> None:
        delivery.attempt += 1
        timeout = self.timeout
        if self._deadline is not None:
            timeout = max(0.05, min(timeout, self._deadline - time.monotonic()))
        body = json.dumps(delivery.event.payload(delivery.coalesced)).encode()
        ok, retryable, retry_after, detail = self._post(channel, body, timeout)
        where = f"{delivery.event.app} {delivery.event.reason} to {channel.shown}"
        if ok:
            channel.current = None
            self._count("delivered")
            log.debug("notification %s delivered", where)
            return
        if retryable and delivery.attempt < self.attempts:
            delay = self.backoff * 2 ** (delivery.attempt - 1)
            if retry_after is not None:
                delay = min(max(retry_after, 0.0), self.max_retry_after)
            delivery.due = time.monotonic() + delay
            log.info("notification %s failed (%s); retrying in %.2fs (attempt %d of %d)",
                     where, detail, delay, delivery.attempt, self.attempts)
            return
        channel.current = None
        self._count("failed")
        log.warning("notification %s failed (%s); gave up after %d attempt(s)",
                    where, detail, delivery.attempt)

    def _post(self, channel: _Channel, body: bytes,
              timeout: float) -> tuple[bool, bool, float | None, str]:
        """``(ok, retryable, retry_after, detail)``; ``detail`` never holds the URL."""
        request = urllib.request.Request(channel.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "gitops-notify", **channel.headers})
        try:
            with self._opener.open(request, timeout=timeout) as response:
                response.read(65536)
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
            retry_after = _retry_after(exc.headers.get("Retry-After")) if exc.headers else None
            exc.close()
            retryable = status == 429 or status >= 500
            return False, retryable, retry_after if retryable else None, f"HTTP {status}"
        except urllib.error.URLError as exc:  # its text may quote the URL: not shown
            reason = exc.reason
            return False, True, None, _reason(reason) if isinstance(reason, OSError) else (
                "request failed")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return False, True, None, _reason(exc)
        if 200 <= status < 300:
            return True, False, None, f"HTTP {status}"
        return False, False, None, f"HTTP {status}"

    def _abandon(self) -> None:
        """At the close deadline: count what was not delivered."""
        with self._cond:
            left = len(self._inbox) * len(self._channels)
            self._inbox.clear()
        for channel in self._channels:
            left += len(channel.pending) + (channel.current is not None)
            channel.pending.clear()
            channel.current = None
        self._drop(left, "not delivered before the notifier closed" if left
                   else "the notifier is closed", force=True)


def _channel(position: int, url: str, tokens: float, now: float) -> _Channel:
    """A URL's channel; a userinfo in it becomes a Basic ``Authorization`` header."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises for a bad port)
    except ValueError:
        raise InvalidURLError(f"notify URL #{position}", "not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = f" ({parts.scheme}://{parts.hostname or ''})" if parts.scheme else ""
        raise InvalidURLError(f"notify URL #{position}{shown}",
                              "expected an http:// or https:// URL with a host")
    headers = {}
    userinfo, hostport, remainder = split_authority(url[len(parts.scheme) + 3:])
    if userinfo is not None:
        user, password = userinfo_credentials(userinfo)
        token = base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
        url = f"{parts.scheme}://{hostport}{remainder}"
    return _Channel(url, f"#{position} {_shown(url)}", tokens, now, headers)


def _reason(exc: object) -> str:
    """An error's kind without text that may quote the URL."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()
