"""update_repository against real Git servers (git daemon with receive-pack, git
http-backend with basic auth) and the real gpg: commit, push, races, push branches."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from images_git import Bare, automation, choice, marker, new_bare

from gitops.errors import InputError, SourceAuthenticationError
from gitops.images.gitpush import UpdateResult, render_message, update_repository
from gitops.sources.git.transport import Remote
from gitops.testing.gitserver import GitDaemon, GitHTTPServer, GpgKey, SSHServer, make_gpg_key

WEB_OLD = "ghcr.io/acme/web:1.0.0"
DEPLOY = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n"
    "    spec:\n      containers:\n      - name: web\n"
    f"        image: {WEB_OLD} # {marker('default:web')}\n"
)
FILES = {
    "apps/web.yaml": DEPLOY,
    "apps/values.yaml": f"tag: '1.0.0'  # {marker('default:web:tag')}\r\nother: x\r\n",
    "apps/plain.yaml": "kind: ConfigMap\n",
    "README.md": f"image: {WEB_OLD} # {marker('default:web')}\n",
}
NEW = {"default:web": choice("default:web", "ghcr.io/acme/web", "1.4.0")}


def need(program: str) -> None:
    if shutil.which(program) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{program} is not installed")
        pytest.skip(f"{program} is not installed")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("git")
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="module")
def daemon(served: Path, home: Path) -> Iterator[GitDaemon]:
    with GitDaemon(served, receive_pack=True).start() as server:
        yield server


@pytest.fixture(scope="module")
def http(served: Path, home: Path) -> Iterator[GitHTTPServer]:
    with GitHTTPServer(served, password="pa:ss@w0rd#x").start() as server:
        yield server


@pytest.fixture(scope="module")
def gpg_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpgKey]:
    need("gpg")
    key = make_gpg_key(tmp_path_factory.mktemp("gnupg"), "Image Bot", "bot@example.com")
    yield key
    key.stop_agent()


@pytest.fixture
def repo(served: Path, home: Path, tmp_path: Path) -> Bare:
    return new_bare(served, home, FILES, tmp=tmp_path)


def test_one_commit_changes_exactly_the_marked_fields_then_nothing(
    repo: Bare, daemon: GitDaemon, tmp_path: Path
) -> None:
    before = repo.head()
    result = update_repository(automation(daemon.url(repo.name)), NEW, workdir=tmp_path / "wd")

    assert result.pushed and result.branch == "main" and result.attempts == 1
    assert result.commit == repo.head()
    assert repo.git("rev-list", "--parents", "-1", "main").split() == [result.commit, before]
    assert repo.git("diff", "--name-only", f"{before}..main").split() == [
        "apps/values.yaml", "apps/web.yaml"]
    assert repo.show("main", "apps/web.yaml") == DEPLOY.replace(WEB_OLD, "ghcr.io/acme/web:1.4.0")
    assert repo.show("main", "apps/values.yaml") == FILES["apps/values.yaml"].replace(
        "'1.0.0'", "'1.4.0'")
    assert repo.show("main", "README.md") == FILES["README.md"]
    assert [(u.path, [(c.line, c.old, c.new) for c in u.changes]) for u in result.changes] == [
        ("apps/values.yaml", [(1, "1.0.0", "1.4.0")]),
        ("apps/web.yaml", [(10, WEB_OLD, "ghcr.io/acme/web:1.4.0")]),
    ]
    assert repo.git("log", "-1", "--format=%an <%ae>|%cn <%ce>", "main").strip() == (
        "Image Bot <bot@example.com>|Image Bot <bot@example.com>")
    message = repo.git("log", "-1", "--format=%B", "main")
    assert message.startswith("Update images (automation default/auto)\n")
    assert f"- apps/web.yaml:10: {WEB_OLD} -> ghcr.io/acme/web:1.4.0 (default:web)" in message
    repo.git("fsck", "--strict")

    again = update_repository(automation(daemon.url(repo.name)), NEW, workdir=tmp_path / "wd")
    fresh = update_repository(automation(daemon.url(repo.name)), NEW)  # a new clone
    assert (again.commit, again.pushed, fresh.commit, fresh.pushed) == (None, False, None, False)
    assert repo.head() == result.commit


def test_a_concurrent_push_is_fetched_and_the_edit_made_again_on_it(
    repo: Bare, daemon: GitDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_push = Remote.push
    theirs: list[str] = []

    def racing_push(self: Remote, *args: object) -> None:
        if not theirs:  # between our fetch and our push, someone else pushes
            theirs.append(repo.someone_pushes({"apps/other.yaml": "kind: Other\n",
                                               "apps/plain.yaml": "kind: Changed\n"}))
        real_push(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Remote, "push", racing_push)
    result = update_repository(automation(daemon.url(repo.name)), NEW, workdir=tmp_path / "wd")

    assert result.attempts == 2 and result.pushed
    assert repo.git("rev-list", "--parents", "-1", "main").split() == [result.commit, theirs[0]]
    assert repo.show("main", "apps/other.yaml") == "kind: Other\n"
    assert repo.show("main", "apps/plain.yaml") == "kind: Changed\n"
    assert "ghcr.io/acme/web:1.4.0" in repo.show("main", "apps/web.yaml")
    # the working tree kept in workdir is the pushed commit's tree
    assert (tmp_path / "wd" / "apps" / "other.yaml").read_text() == "kind: Other\n"


def test_others_pushing_every_time_exhaust_the_bounded_retries(
    repo: Bare, daemon: GitDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_push = Remote.push
    count = iter(range(100))

    def always_racing(self: Remote, *args: object) -> None:
        repo.someone_pushes({"apps/plain.yaml": f"kind: C{next(count)}\n"})
        real_push(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Remote, "push", always_racing)
    with pytest.raises(Exception, match="refs/heads/main moved on the remote"):
        update_repository(automation(daemon.url(repo.name)), NEW, attempts=2)
    assert "1.0.0" in repo.show("main", "apps/web.yaml")


def test_a_push_branch_is_created_from_the_checkout_branch_then_built_on(
    repo: Bare, daemon: GitDaemon
) -> None:
    main = repo.head()
    spec = automation(daemon.url(repo.name), push={"branch": "image-updates"})
    first = update_repository(spec, NEW)
    assert first.branch == "image-updates" and repo.head("image-updates") == first.commit
    assert repo.head() == main  # the checkout branch is untouched
    assert repo.git("rev-list", "--parents", "-1", "image-updates").split() == [first.commit,
                                                                               main]
    newer = {"default:web": choice("default:web", "ghcr.io/acme/web", "1.5.0")}
    second = update_repository(spec, newer)
    assert repo.git("rev-list", "--parents", "-1", "image-updates").split() == [
        second.commit, first.commit]
    assert "ghcr.io/acme/web:1.5.0" in repo.show("image-updates", "apps/web.yaml")
    assert update_repository(spec, newer).commit is None


def test_a_signed_commit_verifies_with_git(repo: Bare, daemon: GitDaemon, gpg_key: GpgKey,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GNUPGHOME", os.fspath(gpg_key.home))
    spec = automation(daemon.url(repo.name), commit={"signingKey": gpg_key.fingerprint})
    result = update_repository(spec, NEW)
    assert result.commit is not None
    verified = subprocess.run(["git", "-C", os.fspath(repo.path), "verify-commit", "--raw",
                               result.commit], capture_output=True, text=True, check=False,
                              env={**os.environ, "GNUPGHOME": os.fspath(gpg_key.home)})
    assert verified.returncode == 0, verified.stderr
    assert f"VALIDSIG {gpg_key.fingerprint}" in verified.stderr


def test_an_unknown_signing_key_fails_before_anything_is_pushed(
    repo: Bare, daemon: GitDaemon, gpg_key: GpgKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GNUPGHOME", os.fspath(gpg_key.home))
    before = repo.head()
    spec = automation(daemon.url(repo.name), commit={"signingKey": "NO-SUCH-KEY"})
    with pytest.raises(Exception, match="signing with key NO-SUCH-KEY failed"):
        update_repository(spec, NEW)
    assert repo.head() == before


def test_credentials_appear_in_no_commit_output_or_log(
    repo: Bare, http: GitHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    password = http.password
    url = http.url(repo.name, private=True, userinfo=f"{http.username}:{password}")
    caplog.set_level(logging.DEBUG)
    result = update_repository(automation(url), NEW)
    assert result.pushed and repo.head() == result.commit
    commit_text = repo.git("cat-file", "-p", "main") + repo.git("log", "-p", "main")
    everything = commit_text + caplog.text + repr(result)
    for secret in (password, "pa:ss", "w0rd"):
        assert secret not in everything

    wrong = http.url(repo.name, private=True, userinfo=f"{http.username}:wrong-{password}")
    with pytest.raises(SourceAuthenticationError) as refused:
        update_repository(automation(wrong), NEW)
    assert password not in str(refused.value) and "wrong" not in str(refused.value)


def test_message_templates() -> None:
    spec = automation("git+file:///tmp/x.git",
                      commit={"messageTemplate": "bump $count image(s) on $branch:\n$images"})
    assert render_message(spec.spec.git.commit.message_template, automation="d/a",
                          branch="main", updates=()) == "bump 0 image(s) on main:\n"
    for bad in ("$nope", "cost: 5$"):
        with pytest.raises(InputError, match=r"d/a: git.commit.messageTemplate has"):
            render_message(bad, automation="d/a", branch="main", updates=())
    with pytest.raises(InputError, match="unknown field \\$tag"):
        update_repository(automation("git+file:///nowhere.git",
                                     commit={"messageTemplate": "$tag"}), NEW)


def test_an_interrupted_run_leaves_a_workdir_that_is_checked_out_again(
    repo: Bare, daemon: GitDaemon, tmp_path: Path
) -> None:
    workdir = tmp_path / "wd"
    broken = {"default:web": choice("default:web", "ghcr.io/acme/web", "1 #bad")}
    with pytest.raises(InputError, match="cannot be written as a plain YAML value"):
        update_repository(automation(daemon.url(repo.name)), broken, workdir=workdir)
    result = update_repository(automation(daemon.url(repo.name)), NEW, workdir=workdir)
    assert result.commit == repo.head()
    assert repo.show("main", "apps/values.yaml") == FILES["apps/values.yaml"].replace(
        "'1.0.0'", "'1.4.0'")
    assert (workdir / "apps" / "values.yaml").read_bytes() == repo.show(
        "main", "apps/values.yaml").encode()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory, home: Path) -> Iterator[SSHServer]:
    need("/usr/sbin/sshd")
    need("ssh")
    with SSHServer(tmp_path_factory.mktemp("sshd")).start() as server:
        yield server


def test_over_ssh_with_a_key_and_known_hosts(repo: Bare, sshd: SSHServer) -> None:
    url = sshd.url(repo.path)
    result = update_repository(automation(url), NEW, credentials={
        "ssh_key": sshd.user_key, "known_hosts": sshd.known_hosts})
    assert result.pushed and repo.head() == result.commit
    with pytest.raises(SourceAuthenticationError, match="SSH"):
        update_repository(automation(url), NEW, credentials={
            "ssh_key": sshd.stranger_key, "known_hosts": sshd.known_hosts})


def test_the_kept_working_tree_follows_files_becoming_folders_and_back(
    repo: Bare, daemon: GitDaemon, tmp_path: Path
) -> None:
    workdir = tmp_path / "wd"
    spec = automation(daemon.url(repo.name))
    update_repository(spec, {}, workdir=workdir)  # a first checkout, nothing to change
    repo.work.git("pull", "-q", "--ff-only", os.fspath(repo.path), "main")
    repo.work.remove("apps/plain.yaml", "README.md")
    repo.work.write({"apps/plain.yaml/inner.yaml": "kind: Inner\n", "README.md/x": "x\n"})
    repo.work.symlink("link.yaml", "apps/web.yaml")
    repo.work.commit("files become folders")
    repo.work.git("push", "-q", os.fspath(repo.path), "HEAD:refs/heads/main")

    result = update_repository(spec, NEW, workdir=workdir)
    assert result.pushed
    assert (workdir / "apps" / "plain.yaml" / "inner.yaml").read_text() == "kind: Inner\n"
    assert (workdir / "link.yaml").is_symlink()
    assert repo.git("ls-tree", "-r", "--name-only", "main").split() == [
        "README.md/x", "apps/plain.yaml/inner.yaml", "apps/values.yaml", "apps/web.yaml",
        "link.yaml"]
    assert repo.git("cat-file", "-p", "main:link.yaml") == "apps/web.yaml"

    repo.work.git("pull", "-q", "--ff-only", os.fspath(repo.path), "main")
    repo.work.remove("apps/plain.yaml")
    repo.work.write({"apps/plain.yaml": "kind: File again\n"})
    repo.work.commit("and back")
    repo.work.git("push", "-q", os.fspath(repo.path), "HEAD:refs/heads/main")
    newer = {"default:web": choice("default:web", "ghcr.io/acme/web", "1.5.0")}
    assert update_repository(spec, newer, workdir=workdir).pushed
    assert (workdir / "apps" / "plain.yaml").read_text() == "kind: File again\n"
    assert "1.5.0" in repo.show("main", "apps/web.yaml")


def test_two_updaters_sharing_a_new_workdir_take_turns(
    served: Path, home: Path, daemon: GitDaemon, tmp_path: Path
) -> None:
    # two `gitops run` sharing GITOPS_CACHE_DIR start the same automation at once: the
    # first run of each creates the kept working tree, and neither may see it half made
    failures: list[BaseException] = []
    results: list[UpdateResult] = []

    def run(barrier: threading.Barrier, url: str, workdir: Path) -> None:
        barrier.wait()
        try:
            results.append(update_repository(automation(url), NEW, workdir=workdir))
        except BaseException as exc:
            failures.append(exc)

    for round_ in range(8):
        repo = new_bare(served, home, FILES, tmp=tmp_path / str(round_))
        barrier = threading.Barrier(3)
        results.clear()
        threads = [threading.Thread(target=run, args=(barrier, daemon.url(repo.name),
                                                      tmp_path / f"wd{round_}"))
                   for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not failures, failures
        assert sorted(r.pushed for r in results) == [False, False, True]


def test_a_workdir_whose_creation_was_interrupted_is_made_again(
    repo: Bare, daemon: GitDaemon, tmp_path: Path
) -> None:
    (tmp_path / "wd" / ".git").mkdir(parents=True)  # killed right after Repo.init's mkdir
    result = update_repository(automation(daemon.url(repo.name)), NEW, workdir=tmp_path / "wd")
    assert result.pushed and result.commit == repo.head()


def test_a_folder_becoming_a_symlink_never_removes_what_it_points_at(
    served: Path, home: Path, daemon: GitDaemon, tmp_path: Path
) -> None:
    # the kept tree must delete evil/b.yaml, not follow the new evil -> outside link to it
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "b.yaml").write_text("precious\n")
    repo = new_bare(served, home, {**FILES, "evil/b.yaml": "x: 1\n"}, tmp=tmp_path)
    workdir = tmp_path / "wd"
    assert update_repository(automation(daemon.url(repo.name)), NEW, workdir=workdir).pushed
    repo.work.git("pull", "-q", "--ff-only", os.fspath(repo.path), "main")
    shutil.rmtree(repo.work.path / "evil")
    (repo.work.path / "evil").symlink_to(outside)
    (repo.work.path / "apps" / "web.yaml").write_text(DEPLOY)  # something to update again
    repo.work.git("add", "-A")
    repo.work.commit("evil becomes a link")
    repo.work.git("push", "-q", os.fspath(repo.path), "HEAD:refs/heads/main")

    assert update_repository(automation(daemon.url(repo.name)), NEW, workdir=workdir).pushed
    assert (outside / "b.yaml").read_text() == "precious\n"
    assert (workdir / "evil").is_symlink()


def test_the_update_plan_never_shows_the_url_password() -> None:
    from gitops.images.gitpush import _Plan

    plan = _Plan.of(automation("git+https://bot:hunter2-Secret@git.example.com/c.git"))
    assert "hunter2" not in repr(plan) and plan.url.endswith("/c.git")
