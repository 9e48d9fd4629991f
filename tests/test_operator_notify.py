"""Notifications posted to a loopback HTTP sink: payload, retries, rate limits, never blocking."""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from gitops.errors import InvalidURLError
from gitops.operator.httpserver import Headers, Request, Response, Server, serve
from gitops.operator.notify import Notification, Notifier, NotifierStats, summary

SHA = "0123456789abcdef0123456789abcdef01234567"
HOOK_PATH = "/services/T000/B000/XXXXSECRETXXXX"


class Sink:
    """A loopback webhook receiver: records each request, answers from a script, may hang."""

    def __init__(self) -> None:
        self.received: list[tuple[float, str, dict[str, Any], Headers]] = []
        self.script: deque[tuple[int, dict[str, str]]] = deque()
        self.open = threading.Event()
        self.open.set()
        self._cond = threading.Condition()

    def handle(self, request: Request) -> Response:
        with self._cond:
            self.received.append((time.monotonic(), request.path, json.loads(request.body),
                                  request.headers))
            status, headers = self.script.popleft() if self.script else (200, {})
            self._cond.notify_all()
        self.open.wait(10)
        return Response(status, b"ok", headers=headers)

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.received) >= count, timeout), self.received

    def bodies(self) -> list[dict[str, Any]]:
        with self._cond:
            return [body for _, _, body, _ in self.received]


@pytest.fixture
def sink() -> Iterator[Sink]:
    sink = Sink()
    yield sink
    sink.open.set()


@pytest.fixture
def server(sink: Sink) -> Iterator[Server]:
    with serve("127.0.0.1:0", {("POST", "/"): sink.handle}, name="sink") as running:
        yield running


@pytest.fixture
def hook(server: Server) -> str:
    return server.url + HOOK_PATH


@pytest.fixture
def notifiers(sink: Sink) -> Iterator[list[Notifier]]:
    made: list[Notifier] = []
    yield made
    sink.open.set()  # a hanging post ends, so close() need not wait for it
    for notifier in made:
        notifier.close(0.2)


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def make(notifiers: list[Notifier], urls: list[str], **options: Any) -> Notifier:
    notifier = Notifier(urls, **options)
    notifiers.append(notifier)
    return notifier


def test_an_event_is_posted_as_json_with_a_one_line_text(
        sink: Sink, hook: str, notifiers: list[Notifier]) -> None:
    notifier = make(notifiers, [hook])
    notifier.notify("gitops/shop", "SyncFailed", f"main@sha1:{SHA}",
                    "apply failed:\n  Deployment shop: invalid")
    sink.wait_for(1)
    _, path, body, headers = sink.received[0]
    assert path == HOOK_PATH and headers["Content-Type"] == "application/json"
    assert "Authorization" not in headers
    assert set(body) == {"app", "reason", "revision", "message", "time", "text", "coalesced"}
    assert (body["app"], body["reason"], body["revision"]) == (
        "gitops/shop", "SyncFailed", f"main@sha1:{SHA}")
    assert body["message"] == "apply failed:\n  Deployment shop: invalid"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["time"])
    sent = datetime.strptime(body["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - sent).total_seconds()) < 60
    assert body["text"] == (
        "gitops/shop SyncFailed at main@sha1:0123456789ab: apply failed: Deployment shop: invalid")
    eventually(lambda: notifier.stats().delivered == 1)


def test_no_known_revision_is_null_whatever_the_caller_passed(
        sink: Sink, hook: str, notifiers: list[Notifier]) -> None:
    """docs/notifications.md: ``revision`` is ``null`` when none is known (callers pass
    ``None`` or ``""``: a set's GenerateFailed, an ApplicationDeleted, a source never read)."""
    notifier = make(notifiers, [hook], rate=100.0, burst=10)
    notifier.notify("ops/fleet", "GenerateFailed", "", "the repository cannot be read")
    notifier.notify("apps/images", "ImageUpdateFailed", None, "push refused")
    sink.wait_for(2)
    assert [body["revision"] for body in sink.bodies()] == [None, None]
    assert sink.bodies()[0]["text"] == "ops/fleet GenerateFailed: the repository cannot be read"


def test_a_userinfo_in_the_url_is_sent_as_basic_auth(sink: Sink, server: Server,
                                                      notifiers: list[Notifier]) -> None:
    url = server.url.replace("http://", "http://hook%40user:p%3Ass@") + "/in"
    make(notifiers, [url]).notify("gitops/shop", "SyncSucceeded", None, "")
    sink.wait_for(1)
    _, path, _, headers = sink.received[0]
    assert path == "/in"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"hook@user:p:ss").decode()


def test_every_url_gets_every_event(sink: Sink, server: Server,
                                    notifiers: list[Notifier]) -> None:
    notifier = make(notifiers, [server.url + "/one", server.url + "/two"])
    notifier.notify("gitops/shop", "SyncSucceeded", None, "")
    sink.wait_for(2)
    assert sorted(path for _, path, _, _ in sink.received) == ["/one", "/two"]
    assert sink.bodies()[0]["text"] == "gitops/shop SyncSucceeded"
    eventually(lambda: notifier.stats().delivered == 2)  # counted per URL


def test_a_500_is_retried_with_backoff_until_it_succeeds(
        sink: Sink, hook: str, notifiers: list[Notifier]) -> None:
    sink.script.append((500, {}))
    notifier = make(notifiers, [hook], attempts=3, backoff=0.2)
    notifier.notify("gitops/shop", "DriftDetected", "main@sha1:" + SHA, "drift")
    sink.wait_for(2)
    (first, _, body1, _), (second, _, body2, _) = sink.received
    assert body1 == body2
    assert second - first >= 0.15
    eventually(lambda: notifier.stats().delivered == 1)
    assert notifier.stats() == NotifierStats(delivered=1, failed=0, dropped=0, coalesced=0)


def test_a_429_is_retried_after_its_retry_after(sink: Sink, hook: str,
                                                 notifiers: list[Notifier]) -> None:
    sink.script.append((429, {"Retry-After": "1"}))
    notifier = make(notifiers, [hook], backoff=0.01)
    notifier.notify("gitops/shop", "SyncSucceeded", None, "")
    sink.wait_for(2)
    assert sink.received[1][0] - sink.received[0][0] >= 0.9


def test_delivery_gives_up_after_its_attempts_and_logs_no_url_secret(
        sink: Sink, hook: str, notifiers: list[Notifier],
        caplog: pytest.LogCaptureFixture) -> None:
    sink.script.extend([(503, {})] * 5)
    notifier = make(notifiers, [hook], attempts=2, backoff=0.01)
    with caplog.at_level(logging.DEBUG, logger="gitops.operator.notify"):
        notifier.notify("gitops/shop", "SyncFailed", None, "boom")
        sink.wait_for(2)
        eventually(lambda: notifier.stats().failed == 1)
        time.sleep(0.1)  # a third attempt, if there were one, would arrive now
    assert len(sink.received) == 2
    assert notifier.stats().failed == 1
    assert "gave up after 2 attempt(s)" in caplog.text and "HTTP 503" in caplog.text
    assert "SECRET" not in caplog.text and "/services" not in caplog.text


def test_a_client_error_is_not_retried(sink: Sink, hook: str, notifiers: list[Notifier]) -> None:
    sink.script.append((400, {}))
    notifier = make(notifiers, [hook], attempts=3, backoff=0.01)
    notifier.notify("gitops/shop", "SyncFailed", None, "")
    sink.wait_for(1)
    eventually(lambda: notifier.stats().failed == 1)
    assert len(sink.received) == 1


def test_an_unreachable_url_fails_after_its_attempts(notifiers: list[Notifier],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    notifier = make(notifiers, [f"http://user:pw@127.0.0.1:{port}{HOOK_PATH}?token=t0k"],
                    attempts=2, backoff=0.01)
    with caplog.at_level(logging.INFO, logger="gitops.operator.notify"):
        notifier.notify("gitops/shop", "SyncFailed", None, "")
        eventually(lambda: notifier.stats().failed == 1)
    assert "Connection refused" in caplog.text
    for secret in ("SECRET", "t0k", "pw@", "/services"):
        assert secret not in caplog.text


def test_each_url_is_rate_limited_after_its_burst(sink: Sink, hook: str,
                                                  notifiers: list[Notifier]) -> None:
    notifier = make(notifiers, [hook], rate=5.0, burst=2)
    for number in range(6):
        notifier.notify(f"team/app{number}", "SyncSucceeded", None, "")
    sink.wait_for(6)
    times = [at for at, _, _, _ in sink.received]
    assert times[1] - times[0] < 0.15  # the burst goes at once
    assert times[2] - times[0] >= 0.15  # then one every 0.2 s
    assert times[5] - times[0] >= 0.75
    assert sorted(body["app"] for body in sink.bodies()) == [f"team/app{n}" for n in range(6)]
    assert notifier.stats().coalesced == 0


def test_waiting_events_of_one_app_are_coalesced_into_the_newest(
        sink: Sink, hook: str, notifiers: list[Notifier]) -> None:
    notifier = make(notifiers, [hook], rate=100.0, burst=1)
    sink.open.clear()
    notifier.notify("gitops/shop", "SyncFailed", None, "attempt 1")
    sink.wait_for(1)  # the first is in flight, and the sink holds it
    for number in range(2, 6):
        notifier.notify("gitops/shop", "SyncFailed", None, f"attempt {number}")
    notifier.notify("team/web", "SyncSucceeded", None, "web")
    for number in range(6, 11):
        notifier.notify("gitops/shop", "SyncFailed", None, f"attempt {number}")
    sink.open.set()
    sink.wait_for(3)
    eventually(lambda: notifier.stats().delivered == 3)
    bodies = sink.bodies()
    assert [(b["app"], b["message"], b["coalesced"]) for b in bodies] == [
        ("gitops/shop", "attempt 1", 0), ("team/web", "web", 0), ("gitops/shop", "attempt 10", 8)]
    assert bodies[2]["text"].endswith("(8 earlier events coalesced)")
    assert notifier.stats().coalesced == 8


def test_notify_returns_at_once_while_the_sink_hangs_and_counts_drops(
        sink: Sink, hook: str, notifiers: list[Notifier],
        caplog: pytest.LogCaptureFixture) -> None:
    sink.open.clear()
    notifier = make(notifiers, [hook], queue_size=5, timeout=5.0)
    with caplog.at_level(logging.WARNING, logger="gitops.operator.notify"):
        notifier.notify("team/app0", "SyncFailed", None, "")
        sink.wait_for(1)
        started = time.monotonic()
        for number in range(1, 200):
            notifier.notify(f"team/app{number}", "SyncFailed", None, "")
        elapsed = time.monotonic() - started
    assert elapsed < 0.5
    assert notifier.stats().dropped >= 199 - 10
    drop_lines = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drop_lines) == 1, "drops are logged once per period"


def test_close_delivers_what_is_waiting(sink: Sink, hook: str) -> None:
    notifier = Notifier([hook], rate=20.0, burst=1)
    for number in range(3):
        notifier.notify(f"team/app{number}", "SyncSucceeded", None, "")
    notifier.close(5.0)
    assert len(sink.received) == 3
    assert notifier.stats().delivered == 3
    notifier.notify("team/late", "SyncSucceeded", None, "")
    assert notifier.stats().dropped == 1
    notifier.close()  # idempotent


def test_close_gives_up_at_its_deadline(sink: Sink, hook: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    sink.open.clear()
    notifier = Notifier([hook], timeout=5.0)
    notifier.notify("team/app0", "SyncFailed", None, "")
    sink.wait_for(1)
    notifier.notify("team/app1", "SyncFailed", None, "")
    started = time.monotonic()
    notifier.close(0.2)
    assert time.monotonic() - started < 1.5
    sink.open.set()  # the post in flight ends; what waited is given up
    eventually(lambda: notifier.stats().dropped >= 1)
    assert notifier.stats().dropped == 1
    assert len(sink.received) == 1


def test_urls_are_shown_as_scheme_and_host_only(notifiers: list[Notifier]) -> None:
    notifier = make(notifiers, ["https://user:pw@hooks.example.com:8443/services/T/B/SECRET?k=v"])
    assert notifier.targets == ("#1 https://hooks.example.com:8443",)
    for shown in (repr(notifier), str(notifier.targets)):
        assert "SECRET" not in shown and "pw" not in shown and "k=v" not in shown


@pytest.mark.parametrize(("url", "shown"), [
    ("ftp://host/SECRET", "notify URL #1 (ftp://host)"),
    ("hooks.example.com/SECRET", "notify URL #1:"),
    ("https:///SECRET", "notify URL #1 (https://)"),
    ("http://host:99999/SECRET", "notify URL #1:"),
])
def test_a_bad_url_is_refused_without_showing_it(url: str, shown: str) -> None:
    with pytest.raises(InvalidURLError) as caught:
        Notifier([url])
    assert str(caught.value).startswith(shown)
    assert "SECRET" not in str(caught.value)


@pytest.mark.parametrize("options", [{"attempts": 0}, {"rate": 0}, {"burst": 0},
                                     {"timeout": 0}, {"backoff": -1}, {"queue_size": 0}])
def test_bad_settings_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Notifier([], **options)


def test_without_urls_notify_does_nothing() -> None:
    notifier = Notifier([])
    notifier.notify("gitops/shop", "SyncFailed", None, "")
    notifier.close()
    assert notifier.stats().dropped == 0


def test_the_summary_is_one_bounded_line() -> None:
    event = Notification("gitops/shop", "HealthDegraded", "v1.2@sha256:" + "a" * 64,
                         "x" * 2000 + "\n" + "tail", datetime(2024, 5, 1, 12, tzinfo=UTC))
    text = summary(event, coalesced=1)
    assert "\n" not in text
    assert text.startswith("gitops/shop HealthDegraded at v1.2@sha256:aaaaaaaaaaaa: xxx")
    assert text.endswith("... (1 earlier event coalesced)")
    assert len(text) < 600
    assert event.payload()["time"] == "2024-05-01T12:00:00Z"
