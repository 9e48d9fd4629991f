"""SharedSources under races and failures: answers never go back in time for an
Application, a webhook's demand for a fresh answer survives a failed resolve, a new round
takes no answer asked before it, and credentials hidden from ``repr`` still keep two
repositories apart. A fake Git source stands in for the remote (no network, no sleeps)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from operator_support import MemoryStatusStore, wait_for
from pydantic import SecretStr
from test_appsets_sharing import CM, repo  # noqa: F401 (a repository on git daemon)

import gitops.plugins
from gitops.apps.spec import Application
from gitops.appsets import sharing
from gitops.appsets.sharing import FolderSource, SharedSources
from gitops.errors import SourceError, TargetError
from gitops.model import Artifact
from gitops.operator import reconcile
from gitops.operator.scheduler import Operator
from gitops.operator.status import AppStatus
from gitops.plugins import open_source
from gitops.sources.base import Source
from gitops.testing.gitserver import WorkRepo

URL = "git+https://git.example.test/fleet.git@main"


class _Remote(Source):
    """A Git remote whose head the test moves; ``fail`` makes the next resolves raise."""

    scheme = "git"

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.head = "r1"
        self.fail: Exception | None = None
        self.asked = 0
        self.entered = threading.Event()
        self.release: threading.Event | None = None  # the next resolve waits for it

    def resolve(self) -> str:
        self.asked += 1
        gate, self.release = self.release, None
        if gate is not None:
            self.entered.set()
            assert gate.wait(10)
        if self.fail is not None:
            raise self.fail
        return self.head

    def fetch(self, revision: str) -> Artifact:
        raise AssertionError("not fetched here")


@pytest.fixture
def remotes(monkeypatch: pytest.MonkeyPatch) -> list[_Remote]:
    """Every remote SharedSources opens, in order."""
    opened: list[_Remote] = []

    def open_remote(url: str, **options: Any) -> _Remote:
        opened.append(_Remote(url, **options))
        return opened[-1]

    monkeypatch.setattr(sharing, "open_source", open_remote)
    return opened


def _app(name: str, **options: Any) -> Application:
    return Application.model_validate({
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"source": {"url": f"{URL}#path=apps/{name}", "options": options},
                 "target": {"url": "mock:"}, "interval": "5m"}})


def _view(sources: SharedSources, name: str, **options: Any) -> FolderSource:
    view = sources.shared_source(_app(name, **options))
    assert view is not None
    return view


class _LateLock:
    """The repository's call lock, letting the thread named ``late`` in only once
    ``open`` is set: a question asked first reaches the remote last (a lock grants in
    no particular order)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waiting, self.open = threading.Event(), threading.Event()

    def __enter__(self) -> None:
        if threading.current_thread().name == "late":
            self.waiting.set()
            assert self.open.wait(10)
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def test_an_application_never_gets_an_older_answer_than_it_had(remotes: list[_Remote]) -> None:
    """X's interval question waits for the call lock; W's webhook asks meanwhile (r1);
    a push, then X's question reaches the remote (r2): X applied r2, and its next
    resolve within the freshness window must not answer r1."""
    sources = SharedSources(freshness=lambda app: 30.0)
    x, w = _view(sources, "x"), _view(sources, "w")
    repository = x._shared
    late = _LateLock()
    repository._calls = late  # type: ignore[assignment]
    got: list[str] = []
    asker = threading.Thread(target=lambda: got.append(x.resolve()), name="late")
    asker.start()
    assert late.waiting.wait(10)
    flight = repository._flight
    assert flight is not None
    while time.monotonic() <= flight.asked:
        pass  # the webhook comes strictly after X's question was made
    w.require_fresh(time.monotonic())
    assert w.resolve() == "r1"
    remotes[0].head = "r2"
    late.open.set()
    asker.join(10)
    assert got == ["r2"]
    assert x.resolve() == "r2", "X would deploy r1 again, older than the r2 it applied"
    assert w.resolve() == "r2"
    sources.close()


def test_a_fresh_answer_asked_for_survives_a_failed_resolve(remotes: list[_Remote]) -> None:
    """A webhook's resolve fails (the remote hung up): the retry must still ask the
    remote, not take the answer cached before the webhook."""
    sources = SharedSources(freshness=lambda app: 30.0)
    view = _view(sources, "a")
    assert view.resolve() == "r1"
    remote = remotes[0]
    remote.head, remote.fail = "r2", SourceError(URL, "the remote hung up")
    view.require_fresh(time.monotonic())
    with pytest.raises(SourceError):
        view.resolve()
    remote.fail = None
    assert view.resolve() == "r2", "the webhook's commit would wait for the next interval"
    assert remote.asked == 3
    assert view.resolve() == "r2" and remote.asked == 3  # served: fresh for 30 s again
    sources.close()


def test_a_new_round_takes_no_answer_asked_before_it(remotes: list[_Remote]) -> None:
    """refresh() while a resolve is in flight: that resolve's answer is its callers',
    the next round asks the remote again."""
    sources = SharedSources()
    view = _view(sources, "a")
    remote = remotes[0]
    remote.release = gate = threading.Event()
    got: list[str] = []
    asker = threading.Thread(target=lambda: got.append(view.resolve()))
    asker.start()
    assert remote.entered.wait(10)
    sources.refresh()
    gate.set()
    asker.join(10)
    assert got == ["r1"]
    remote.head = "r2"
    assert view.resolve() == "r2", "the new round took the answer of the round before"
    assert remote.asked == 2
    sources.close()


def test_credentials_hidden_from_repr_still_keep_repositories_apart(
        remotes: list[_Remote]) -> None:
    """Options given as SecretStr (the SDK): two passwords, two repositories."""
    sources = SharedSources(freshness=lambda app: 30.0)
    one = _view(sources, "a", username="bot", password=SecretStr("first-password"))
    two = _view(sources, "b", username="bot", password=SecretStr("second-password"))
    again = _view(sources, "c", username="bot", password=SecretStr("first-password"))
    assert one._shared is not two._shared, "an Application would fetch with another's password"
    assert one._shared is again._shared
    for text in (one._shared.key, two._shared.key, repr(one._shared), repr(sources)):
        assert "password" not in text
    sources.close()


def test_a_path_option_wins_over_the_urls_as_unshared(request: pytest.FixtureRequest) -> None:
    """Options win over the URL's fragment (GitOptions): a view must render the folder
    the Application's own source would, not the URL's."""
    found: tuple[WorkRepo, Path, str] = request.getfixturevalue("repo")
    url = found[2]
    app = Application.model_validate({
        "metadata": {"name": "both"},
        "spec": {"source": {"url": f"{url}@main#path=apps/a", "options": {"path": "apps/b"}},
                 "target": {"url": "mock:"}}})
    with open_source(app.spec.source.url, **app.source_options) as own:
        assert own.fetch(own.resolve()).path.name == "b"
    sources = SharedSources(freshness=lambda app: 30.0)
    try:
        source = sources.open_source(app)
        artifact = source.fetch(source.resolve())
        assert artifact.path.name == "b", "the shared view rendered the URL's folder"
        source.close()
    finally:
        sources.close()


def test_a_fresh_answer_asked_for_survives_a_target_that_failed_to_open(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed Application must take an answer asked after the change; its first
    reconcile fails to open its target (before any resolve): the retry still asks the
    remote, not the answer cached before the change (a commit pushed meanwhile), which
    another Application of the repository keeps."""
    work, bare, url = request.getfixturevalue("repo")

    def app(interval: str, name: str = "a") -> Application:
        return Application.model_validate({
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"source": {"url": f"{url}@main#path=apps/{name}"},
                     "target": {"url": "mock:"}, "interval": interval,
                     "retry": {"backoff": "50ms"}}})

    failing = threading.Event()
    opened = [0]
    real = gitops.plugins.open_target

    def open_target(target_url: str, **options: Any) -> Any:
        if failing.is_set():
            opened[0] += 1
            if opened[0] == 1:
                raise TargetError("the target is not there yet", url=target_url)
        return real(target_url, **options)

    monkeypatch.setattr(reconcile, "open_target", open_target)
    operator = Operator(MemoryStatusStore(), workers=1)
    other = app("10m", "b")  # keeps the repository, and its answer, open
    operator.set_applications([app("10m"), other])
    operator.start()
    try:
        first = work.head()
        wait_for(lambda: _applied(operator, first), 10, "the first commit applied")
        work.write({"apps/a/cm.yaml": CM.format(name="a", v=2)})
        work.commit("a 2")
        work.push(bare)
        failing.set()
        operator.upsert(app("9m"))  # changed: its source opens again, and must ask
        wait_for(lambda: opened[0] >= 2 and operator.idle and _settled(operator), 10,
                 "the failure and the retry")
        assert _applied(operator, work.head()), "the retry took the answer from before"
    finally:
        operator.stop()


def _status(operator: Operator) -> AppStatus | None:
    return operator.status("team/a")


def _applied(operator: Operator, commit: str) -> bool:
    status = _status(operator)
    return status is not None and status.last_applied_revision.endswith(commit)


def _settled(operator: Operator) -> bool:
    status = _status(operator)
    return status is not None and status.sync == "Synced"


class _CountingLock:
    """The repository's call lock, counting the callers that came to it."""

    def __init__(self) -> None:
        self._lock, self._count = threading.Lock(), threading.Lock()
        self.entered = 0

    def __enter__(self) -> None:
        with self._count:
            self.entered += 1
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class _FailingFetch(_Remote):
    """A remote whose fetches wait for ``gate`` and then fail (an unreachable server)."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.fetches = 0
        self.gate = threading.Event()

    def fetch(self, revision: str) -> Artifact:
        self.fetches += 1
        self.entered.set()
        assert self.gate.wait(10)
        raise SourceError(self.url, "connection timed out")


def test_views_waiting_for_a_failing_fetch_take_its_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Three views fetch one revision while the remote hangs: one question, its error for
    all three (not three timeouts one after another); a later fetch asks again."""
    opened: list[_FailingFetch] = []

    def open_remote(url: str, **options: Any) -> _FailingFetch:
        opened.append(_FailingFetch(url, **options))
        return opened[-1]

    monkeypatch.setattr(sharing, "open_source", open_remote)
    sources = SharedSources(freshness=lambda app: 30.0)
    views = [_view(sources, name) for name in ("a", "b", "c")]
    calls = _CountingLock()
    views[0]._shared._calls = calls  # type: ignore[assignment]
    errors: list[Exception] = []

    def fetch(view: FolderSource) -> None:
        try:
            view.fetch("r1")
        except SourceError as exc:
            errors.append(exc)

    first = threading.Thread(target=fetch, args=(views[0],))
    first.start()
    assert opened[0].entered.wait(10)  # the first question is at the remote
    others = [threading.Thread(target=fetch, args=(view,)) for view in views[1:]]
    for thread in others:
        thread.start()
    wait_for(lambda: calls.entered == 3, 5, "the two others waiting for the call lock")
    opened[0].gate.set()
    for thread in [first, *others]:
        thread.join(10)
    assert len(errors) == 3 and opened[0].fetches == 1, (errors, opened[0].fetches)
    with pytest.raises(SourceError):
        views[0].fetch("r1")  # not waiting for a failed question: asks the remote again
    assert opened[0].fetches == 2
