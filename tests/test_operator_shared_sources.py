"""The operator shares one Git source per repository, ref and options between its
Applications: one ls-refs per freshness window, a webhook seen by all at once, closing
one Application leaves the others working, different options never share, a failed or
cancelled resolve is its caller's alone. Real ``git daemon``, round trips counted at
:class:`gitops.sources.git.transport.Remote`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_support import MemoryStatusStore, wait_for
from test_appsets_sharing import CM, repo  # noqa: F401 (repo: the fixture fleet builds on)

from gitops.apps.spec import Application
from gitops.appsets.sharing import FolderSource, SharedSources
from gitops.errors import SourceError
from gitops.operator.scheduler import Operator
from gitops.operator.status import AppStatus
from gitops.sources.git import GitSource
from gitops.sources.git.transport import Remote
from gitops.testing.gitserver import WorkRepo


class Fleet:
    def __init__(self, work: WorkRepo, bare: Path, url: str) -> None:
        self.work, self.bare, self.url = work, bare, url
        self.ls_refs = 0

    def push(self, folder: str, value: int) -> str:
        self.work.write({f"apps/{folder}/cm.yaml": CM.format(name=folder, v=value)})
        self.work.commit(f"{folder} {value}")
        self.work.push(self.bare)
        return self.work.head()


@pytest.fixture
def fleet(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    """The fixture ``repo`` (folders ``apps/a`` and ``apps/b`` on ``git daemon``), its
    ls-refs counted."""
    found = Fleet(*request.getfixturevalue("repo"))
    real = Remote.ls_refs
    lock = threading.Lock()

    def counting(remote: Remote, *args: Any, **kwargs: Any) -> Any:
        with lock:
            found.ls_refs += 1
        return real(remote, *args, **kwargs)

    monkeypatch.setattr(Remote, "ls_refs", counting)
    return found


def _app(name: str, url: str, interval: str = "10m", **options: Any) -> Application:
    return Application.model_validate({
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"source": {"url": url, "options": options}, "target": {"url": "mock:"},
                 "interval": interval}})


def _apps(url: str) -> list[Application]:
    return [_app(f"{folder}-{i}", f"{url}@main#path=apps/{folder}")
            for folder in ("a", "b") for i in range(3)]


def _all_at(operator: Operator, commit: str) -> bool:
    statuses = [operator.status(key) for key in operator.applications()]
    return all(s is not None and s.sync == "Synced" and s.last_applied_revision.endswith(commit)
               for s in statuses)


def test_one_ls_refs_for_many_applications_and_a_webhook_seen_by_all(fleet: Fleet) -> None:
    operator = Operator(MemoryStatusStore(), workers=4)
    wrote: list[str] = []

    def on_status(app: Application, _status: AppStatus, reason: str) -> None:
        if reason == "SyncSucceeded":
            wrote.append(app.key)

    operator.on_status(on_status)
    operator.set_applications(_apps(fleet.url))
    operator.start()
    try:
        first = fleet.work.head()
        wait_for(lambda: _all_at(operator, first), 10, "six Applications Synced")
        assert fleet.ls_refs == 1  # six Applications, one question to the remote
        assert sorted(wrote) == [f"team/{f}-{i}" for f in "ab" for i in range(3)]

        for key in operator.applications():  # every interval at once: the answer is fresh
            operator.trigger(key, "interval")
        wait_for(lambda: operator.idle, 10, "the interval reconciles done")
        assert fleet.ls_refs == 1

        wrote.clear()
        second = fleet.push("a", 2)
        for key in operator.applications():  # a push webhook
            operator.trigger(key, "webhook")
        wait_for(lambda: _all_at(operator, second), 10, "every Application at the pushed commit")
        # asked again (within the fresh answer's window): once, twice if the first question
        # left before the last Application was triggered; never once per Application
        assert 2 <= fleet.ls_refs <= 3
        wait_for(lambda: operator.idle, 10, "the webhook reconciles done")
        assert sorted(wrote) == ["team/a-0", "team/a-1", "team/a-2"]  # b did not change
    finally:
        operator.stop()


def test_closing_one_application_leaves_the_others_working(fleet: Fleet) -> None:
    operator = Operator(MemoryStatusStore(), workers=2)
    operator.set_applications(_apps(fleet.url))
    operator.start()
    try:
        wait_for(lambda: _all_at(operator, fleet.work.head()), 10, "six Applications Synced")
        assert operator.remove("team/a-0")  # its source view is closed
        second = fleet.push("a", 3)
        for key in operator.applications():
            operator.trigger(key, "webhook")
        wait_for(lambda: _all_at(operator, second), 10, "the five others at the new commit")
        assert len(operator.applications()) == 5
    finally:
        operator.stop()


def test_the_last_view_closes_the_shared_source(fleet: Fleet, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    closed: list[str] = []
    real = GitSource.close

    def close(self: GitSource) -> None:
        closed.append(self.url)
        real(self)

    monkeypatch.setattr(GitSource, "close", close)
    sources = SharedSources(freshness=lambda app: 30.0)
    one = sources.shared_source(_app("one", f"{fleet.url}@main#path=apps/a"))
    two = sources.shared_source(_app("two", f"{fleet.url}@main#path=apps/b"))
    assert one is not None and two is not None
    one.fetch(one.resolve())
    one.close()
    one.close()  # idempotent: releases once
    assert closed == []
    revision = two.resolve()
    assert (two.fetch(revision).path / "cm.yaml").is_file()
    assert fleet.ls_refs == 1
    two.close()
    assert len(closed) == 1
    three = sources.shared_source(_app("three", f"{fleet.url}@main#path=apps/a"))
    assert three is not None and three.resolve() == revision  # a new shared source
    assert fleet.ls_refs == 2
    sources.close()


def test_answers_expire_and_fresh_requests_ask(fleet: Fleet) -> None:
    sources = SharedSources(freshness=lambda app: 0.2)
    views = [sources.shared_source(_app(f"v{i}", f"{fleet.url}@main#path=apps/a"))
             for i in range(3)]
    try:
        assert all(v is not None for v in views)
        first = [v.resolve() for v in views if v is not None]
        assert len(set(first)) == 1 and fleet.ls_refs == 1
        second = fleet.push("a", 4)
        assert views[0] is not None and views[0].resolve() == first[0]  # still fresh
        assert fleet.ls_refs == 1
        views[1].require_fresh(time.monotonic()) if views[1] is not None else None
        assert views[1] is not None and views[1].resolve().endswith(second)  # a webhook asks
        assert fleet.ls_refs == 2
        assert views[2] is not None and views[2].resolve().endswith(second)  # shared at once
        time.sleep(0.25)
        assert views[0].resolve().endswith(second) and fleet.ls_refs == 3  # expired: asked
    finally:
        sources.close()


def test_different_options_do_not_share_and_show_no_secret(fleet: Fleet) -> None:
    sources = SharedSources(freshness=lambda app: 30.0)
    url = f"{fleet.url}@main#path=apps/a"
    plain = sources.shared_source(_app("plain", url))
    same = sources.shared_source(_app("same", f"{fleet.url}@main#path=apps/b"))
    slow = sources.shared_source(_app("slow", url, timeout=99))
    other_ref = sources.shared_source(_app("ref", f"{fleet.url}@v1#path=apps/a"))
    secret = sources.shared_source(_app("secret", url, username="bot", password="hunter2-token"))
    try:
        assert plain is not None and same is not None and slow is not None
        assert other_ref is not None and secret is not None
        assert plain._shared is same._shared  # another folder of the same repository and ref
        shared = {id(v._shared) for v in (plain, slow, other_ref, secret)}
        assert len(shared) == 4
        plain.resolve()
        slow.resolve()
        assert fleet.ls_refs == 2
        for text in (repr(secret), repr(secret._shared), repr(sources), secret._shared.key,
                     secret.url, secret.identity()):
            assert "hunter2" not in text
        # a URL with fragment options other than path=, and dir:, are not shared
        assert sources.shared_source(_app("semver", f"{fleet.url}#path=apps/a&semver=^1")) is None
        assert sources.shared_source(_app("dir", "dir:/tmp")) is None
    finally:
        sources.close()


def _blocking_resolve(monkeypatch: pytest.MonkeyPatch, outcomes: list[BaseException | None]
                      ) -> tuple[threading.Event, threading.Event]:
    """GitSource.resolve: the first call waits for ``release``; each call takes the next
    outcome (an exception to raise, or None: really resolve)."""
    entered, release = threading.Event(), threading.Event()
    real = GitSource.resolve
    calls = [0]

    def resolve(self: GitSource) -> str:
        calls[0] += 1
        if calls[0] == 1:
            entered.set()
            assert release.wait(10)
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return real(self)

    monkeypatch.setattr(GitSource, "resolve", resolve)
    return entered, release


def _concurrently(views: list[FolderSource], monkeypatch: pytest.MonkeyPatch,
                  outcomes: list[BaseException | None]) -> list[str | BaseException]:
    """The first view resolves (blocked), the second joins its flight; both results."""
    entered, release = _blocking_resolve(monkeypatch, outcomes)
    results: list[str | BaseException] = [RuntimeError("not run"), RuntimeError("not run")]

    def run(index: int) -> None:
        try:
            results[index] = views[index].resolve()
        except BaseException as exc:  # the cancellation is the result here
            results[index] = exc

    leader = threading.Thread(target=run, args=(0,))
    leader.start()
    assert entered.wait(10)
    waiter = threading.Thread(target=run, args=(1,))
    waiter.start()
    time.sleep(0.05)  # let the waiter join the flight in progress (it cannot finish before)
    release.set()
    leader.join(10)
    waiter.join(10)
    return results


@pytest.fixture
def two_views(fleet: Fleet) -> Iterator[list[FolderSource]]:
    """Two views of ``apps/a``, sharing one source (answers fresh for 30 s)."""
    sources = SharedSources(freshness=lambda app: 30.0)
    views = [sources.shared_source(_app(f"v{i}", f"{fleet.url}@main#path=apps/a"))
             for i in range(2)]
    yield [v for v in views if v is not None]
    sources.close()


def test_a_failed_resolve_raises_for_its_callers_and_is_not_kept(
        fleet: Fleet, two_views: list[FolderSource], monkeypatch: pytest.MonkeyPatch) -> None:
    found = _concurrently(two_views, monkeypatch,
                          [SourceError(fleet.url, "the remote hung up"), None])
    assert all(isinstance(r, SourceError) and "hung up" in str(r) for r in found)
    assert two_views[0].resolve().endswith(fleet.work.head())  # asked again


def test_a_cancelled_resolve_is_asked_again_by_the_others(
        fleet: Fleet, two_views: list[FolderSource], monkeypatch: pytest.MonkeyPatch) -> None:
    found = _concurrently(two_views, monkeypatch, [KeyboardInterrupt(), None])
    assert isinstance(found[0], KeyboardInterrupt)
    assert isinstance(found[1], str) and found[1].endswith(fleet.work.head())


def test_a_new_interval_gives_a_new_freshness_window(fleet: Fleet) -> None:
    operator = Operator(MemoryStatusStore(), workers=1)
    app = _app("a", f"{fleet.url}@main#path=apps/a", interval="10m")
    operator.set_applications([app])
    operator.start()
    try:
        wait_for(lambda: _all_at(operator, fleet.work.head()), 10, "Synced")
        runner = operator._entries[app.key].runner
        assert isinstance(runner._source, FolderSource) and runner._source.max_age == 30.0
        operator.upsert(_app("a", f"{fleet.url}@main#path=apps/a", interval="20s"))
        wait_for(lambda: isinstance(runner._source, FolderSource)
                 and runner._source.max_age == 2.0, 10, "the source opened again")
    finally:
        operator.stop()


class _Catalog:
    """A :class:`gitops.operator.commands.Catalog` of fixed applications, status in memory."""

    def __init__(self, apps: list[Application]) -> None:
        self.apps, self._store = apps, MemoryStatusStore()

    @property
    def store(self) -> MemoryStatusStore:
        return self._store

    def applications(self) -> list[Application]:
        return self.apps

    def suspend(self, app: Application, suspended: bool, reason: str) -> None:
        raise AssertionError("run --once suspends nothing")

    def invalid(self) -> list[tuple[str, str]]:
        return []

    def close(self) -> None:
        pass


def test_run_once_asks_each_repository_for_its_refs_once(fleet: Fleet) -> None:
    from gitops.operator.commands import run_once

    results = run_once(_Catalog(_apps(fleet.url)))
    head = fleet.work.head()
    assert [o.status.last_applied_revision.endswith(head) for _, o in results if o] == [True] * 6
    assert fleet.ls_refs == 1  # `gitops run --once`: six Applications, one question
