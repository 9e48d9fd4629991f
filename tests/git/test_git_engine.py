"""The Git source through the engine and the CLI, and the Source conformance kit."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gitrepos import Published

from gitops import Reconciler
from gitops.cli import main
from gitops.sources.base import Source
from gitops.sources.git import GitSource
from gitops.testing.conformance import SourceConformance
from gitops.testing.gitserver import GitDaemon, GitHTTPServer, WorkRepo

MakeRepo = Callable[..., Published]


def configmap(name: str, color: str) -> str:
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: shop\n"
            f"data:\n  color: {color}\n")


NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n"


@pytest.fixture
def app(make_repo: MakeRepo) -> Published:
    return make_repo({"apps/ns.yaml": NAMESPACE, "apps/web.yaml": configmap("web", "blue"),
                      "apps/api.yaml": configmap("api", "red"), "README.md": "# app\n"})


def sync_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(["sync", *args, "-o", "json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    data: dict[str, Any] = json.loads(out.out)
    return data


def test_cli_sync_picks_up_pushed_commits(app: Published, daemon: GitDaemon, cache: Path,
                                          tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    url = f"{daemon.url(app.name)}@main#path=apps"
    out = f"dir:{tmp_path / 'out'}"
    first = sync_json(capsys, url, out)
    assert first["revision"] == f"main@sha1:{app.work.head()}"
    assert sorted(c["name"] for c in first["changes"]) == ["api", "shop", "web"]
    commit = app.commit({"apps/web.yaml": configmap("web", "green"), "README.md": "# v2\n"})
    second = sync_json(capsys, url, out)
    assert second["revision"] == f"main@sha1:{commit}"
    assert [(c["action"], c["name"]) for c in second["changes"]] == [("update", "web")]
    third = sync_json(capsys, url, out)
    assert third["changes"] == [] and third["in_sync"] is True


def test_cli_tags_and_commit_pins(app: Published, daemon: GitDaemon, cache: Path,
                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = app.work.head()
    app.work.tag("v1.0.0", annotated=True)
    app.commit({"apps/web.yaml": configmap("web", "green")})
    out = f"dir:{tmp_path / 'out'}"
    tagged = sync_json(capsys, f"{daemon.url(app.name)}@v1.0.0#path=apps", out)
    assert tagged["revision"] == f"v1.0.0@sha1:{first}"
    semver = sync_json(capsys, f"{daemon.url(app.name)}#path=apps&semver=^1", out)
    assert semver["revision"] == f"v1.0.0@sha1:{first}" and semver["changes"] == []
    pinned = sync_json(capsys, f"{daemon.url(app.name)}@{app.work.head()}#path=apps", out)
    assert pinned["revision"] == f"sha1:{app.work.head()}"
    assert [c["name"] for c in pinned["changes"]] == ["web"]


def test_cli_errors_are_one_line_and_change_nothing(app: Published, daemon: GitDaemon,
                                                    cache: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    sync_json(capsys, f"{daemon.url(app.name)}#path=apps", f"dir:{out}")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for bad in ("@nope#path=apps", "#path=missing", "@" + "f" * 40):
        code = main(["sync", daemon.url(app.name) + bad, f"dir:{out}"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and daemon.url(app.name) in err, err
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_cli_never_prints_credentials(app: Published, http_server: GitHTTPServer, cache: Path,
                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "sup3r-s3cret-w0rd"
    url = http_server.url(app.name, private=True, userinfo=f"gitops:{secret}")
    assert main(["-v", "diff", url, f"dir:{tmp_path / 'out'}"]) == 2
    out = capsys.readouterr()
    assert "401" in out.err and secret not in out.err + out.out


def test_the_command_line_program(app: Published, daemon: GitDaemon, cache: Path,
                                  tmp_path: Path) -> None:
    """The exact command of the issue, as a separate process."""
    url = f"{daemon.url(app.name)}@main#path=apps"
    done = subprocess.run([sys.executable, "-m", "gitops.cli", "sync", url,
                           f"dir:{tmp_path / 'out'}", "-o", "json"],
                          capture_output=True, text=True, env=os.environ, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["revision"] == f"main@sha1:{app.work.head()}"


def test_a_no_op_sync_resolves_but_does_not_fetch(app: Published, daemon: GitDaemon,
                                                  cache: Path, tmp_path: Path) -> None:
    source = GitSource(f"{daemon.url(app.name)}#path=apps", cache_dir=cache)
    fetched: list[str] = []
    real_fetch = source.fetch

    def counting_fetch(revision: str) -> object:
        fetched.append(revision)
        return real_fetch(revision)

    source.fetch = counting_fetch  # type: ignore[method-assign, assignment]
    with source, Reconciler(source, f"dir:{tmp_path / 'out'}") as reconciler:
        assert reconciler.sync().succeeded
        result = reconciler.sync()
    assert result.plan.in_sync and len(fetched) == 1


# -- the conformance kit -----------------------------------------------------------------


class TestGitSourceConformance(SourceConformance):
    """``git+file://`` repositories built with the real git, one commit per content."""

    @pytest.fixture
    def works(self) -> dict[int, WorkRepo]:
        return {}

    @pytest.fixture
    def make_source(self, tmp_path: Path, git_home: Path, works: dict[int, WorkRepo],
                    cache: Path) -> Iterator[Callable[[dict[str, str]], Source]]:
        counter = itertools.count()

        def make(files: dict[str, str]) -> Source:
            work = WorkRepo(tmp_path / f"conformance-{next(counter)}", home=git_home)
            work.write(dict(files))
            work.commit("content")
            source = GitSource(f"git+file://{work.path}", cache_dir=cache)
            works[id(source)] = work
            return source

        yield make

    @pytest.fixture
    def update_source(self, works: dict[int, WorkRepo]) -> Callable[[Source, dict[str, str]], None]:
        def update(source: Source, files: dict[str, str]) -> None:
            work = works[id(source)]
            work.replace(dict(files))
            work.commit("new content")

        return update


def _bad_source(kind: str, make_repo: MakeRepo, daemon: GitDaemon,
                http_server: GitHTTPServer) -> str:
    if kind == "unreachable":
        return "git+git://127.0.0.1:1/r.git"
    if kind == "wrong credentials":
        repo = make_repo({"apps/ns.yaml": NAMESPACE})
        return http_server.url(repo.name, private=True, userinfo="gitops:wrong")
    repo = make_repo({"apps/ns.yaml": NAMESPACE})
    if kind == "symlink":
        repo.work.symlink("apps/evil.yaml", "/etc/passwd")
    elif kind == "lfs":
        repo.work.write({"apps/big.yaml": "version https://git-lfs.github.com/spec/v1\n"
                                          "oid sha256:" + "0" * 64 + "\nsize 1\n"})
    repo.work.write({"apps/web.yaml": configmap("web", "changed")})
    repo.work.commit(kind)
    repo.publish()
    suffix = {"symlink": "", "lfs": "", "unknown commit": "@" + "a" * 40,
              "unknown branch": "@nope", "missing path": "#path=nowhere"}[kind]
    return daemon.url(repo.name) + suffix


@pytest.mark.parametrize("kind", ["unreachable", "wrong credentials", "symlink", "lfs",
                                  "unknown commit", "unknown branch", "missing path"])
def test_bad_sources_leave_the_target_unchanged(kind: str, make_repo: MakeRepo,
                                                daemon: GitDaemon, http_server: GitHTTPServer,
                                                cache: Path, tmp_path: Path) -> None:
    from gitops.errors import GitopsError
    from gitops.sources.directory import DirectorySource

    good = tmp_path / "good"
    good.mkdir()
    (good / "ns.yaml").write_text(NAMESPACE)
    (good / "web.yaml").write_text(configmap("web", "blue"))
    out = tmp_path / "out"
    with Reconciler(DirectorySource(good), f"dir:{out}") as reconciler:
        assert reconciler.sync().succeeded
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    url = _bad_source(kind, make_repo, daemon, http_server)
    with pytest.raises(GitopsError) as info, \
            Reconciler(GitSource(url + ("#path=apps" if "#" not in url else ""),
                                 cache_dir=cache, timeout=2), f"dir:{out}") as reconciler:
        reconciler.sync()
    assert "\n" not in str(info.value) and "wrong" not in str(info.value)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
