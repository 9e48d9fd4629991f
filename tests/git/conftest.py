"""Real Git servers for the Git source's tests, started once per session on loopback.

``git daemon`` (git://), ``git http-backend`` behind a loopback HTTP server (and an
HTTPS one with a certificate made here), ``sshd`` with generated host and user keys,
and throwaway GPG keys; repositories are built with the real ``git``. A missing program
skips the tests that need it locally, and fails them under ``CI=true`` (``.ci/run``
installs everything).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gitrepos import APPS, Fixture, Published, require

from gitops.testing.gitserver import (
    GitDaemon,
    GitHTTPServer,
    GpgKey,
    SSHServer,
    WorkRepo,
    make_gpg_key,
    make_tls_certificate,
)

SSHD = "/usr/sbin/sshd"


@pytest.fixture(scope="session")
def git_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require("git", "git")
    return tmp_path_factory.mktemp("git-home")


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory every server serves bare repositories from."""
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="session")
def daemon(served: Path, git_home: Path) -> Iterator[GitDaemon]:
    with GitDaemon(served).start() as server:
        yield server


@pytest.fixture(scope="session")
def http_server(served: Path, git_home: Path) -> Iterator[GitHTTPServer]:
    with GitHTTPServer(served).start() as server:
        yield server


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require("openssl", "openssl")
    return make_tls_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def https_server(served: Path, git_home: Path, tls_files: tuple[Path, Path]
                 ) -> Iterator[GitHTTPServer]:
    with GitHTTPServer(served, certificate=tls_files[0], key=tls_files[1]).start() as server:
        yield server


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory, git_home: Path) -> Iterator[SSHServer]:
    require(SSHD, "openssh-server")
    require("ssh", "openssh-client")
    require("ssh-keygen", "openssh-client")
    with SSHServer(tmp_path_factory.mktemp("sshd"), SSHD).start() as server:
        yield server


@pytest.fixture(scope="session")
def gpg_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpgKey]:
    require("gpg", "gnupg")
    key = make_gpg_key(tmp_path_factory.mktemp("gnupg"))
    yield key
    key.stop_agent()


@pytest.fixture(scope="session")
def stranger_gpg_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpgKey]:
    require("gpg", "gnupg")
    key = make_gpg_key(tmp_path_factory.mktemp("gnupg-stranger"), "Stranger",
                       "stranger@example.com")
    yield key
    key.stop_agent()


_names = itertools.count()


@pytest.fixture
def make_repo(tmp_path: Path, served: Path, git_home: Path) -> Callable[..., Published]:
    """``make_repo(files, branch="main", gnupghome=None) -> Repo``, committed and published."""

    def make(files: dict[str, str | bytes] | None = None, *, branch: str = "main",
             gnupghome: Path | None = None, name: str | None = None) -> Published:
        name = name or f"repo-{os.getpid()}-{next(_names)}.git"
        work = WorkRepo(tmp_path / f"work-{name}", home=git_home, branch=branch,
                        gnupghome=gnupghome)
        repo = Published(work, name, served / name)
        if files is not None:
            work.write(files)
            work.commit("initial")
            repo.publish()
        return repo

    return make


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache for the test (also for sources opened without cache_dir)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("GITOPS_CACHE_DIR", os.fspath(path))
    for name in ("GITOPS_GIT_USERNAME", "GITOPS_GIT_PASSWORD", "GITOPS_GIT_BEARER_TOKEN",
                 "GITOPS_GIT_SSH_KEY", "GITOPS_GIT_SSH_KEY_PASSPHRASE", "GITOPS_GIT_KNOWN_HOSTS",
                 "GITOPS_GIT_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture(scope="session")
def fixture_repo(tmp_path_factory: pytest.TempPathFactory, served: Path, git_home: Path
                 ) -> Fixture:
    """``fixture.git``: main (2 commits), dev (+1), tags v1.0.0 (lightweight, commit 1),
    v1.1.0 (annotated, commit 2), v1.2.0-rc.1 and v2.0.0 (commit 3), and ``both``: a
    branch and a tag of the same name."""
    work = WorkRepo(tmp_path_factory.mktemp("fixture") / "work", home=git_home)
    work.write(APPS)
    first = work.commit("first")
    work.tag("v1.0.0")
    work.write({"apps/config.yaml": APPS["apps/config.yaml"].replace("blue", "green")})
    second = work.commit("second: green")
    work.tag("v1.1.0", annotated=True)
    work.git("branch", "both")
    work.tag("both")
    work.branch("dev")
    work.write({"apps/extra.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                  "  name: extra\n  namespace: shop\n"})
    dev = work.commit("third, on dev")
    work.tag("v1.2.0-rc.1")
    work.tag("v2.0.0", annotated=True)
    work.switch("main")
    work.push(served / "fixture.git")
    tag_object = work.git("rev-parse", "v1.1.0").strip()
    return Fixture("fixture.git", first, second, dev, tag_object)
