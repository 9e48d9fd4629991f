"""The Git source against real servers: refs, fetches, caching, trees, failures."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from gitrepos import APPS, Fixture, Published

from gitops import open_source
from gitops.errors import InvalidURLError, RevisionNotFoundError, SourceError
from gitops.sources.git import GitSource
from gitops.testing.gitserver import GitDaemon, GitHTTPServer
from gitops.tree import tree_digest

MakeRepo = Callable[..., Published]


def files_of(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def fixture_url(daemon: GitDaemon, fixture_repo: Fixture) -> str:
    return daemon.url(fixture_repo.name)


# -- resolve -----------------------------------------------------------------------------


def test_resolve_follows_the_remote_head_branch(fixture_url: str, fixture_repo: Fixture,
                                                cache: Path) -> None:
    with GitSource(fixture_url, cache_dir=cache) as source:
        assert source.resolve() == f"main@sha1:{fixture_repo.second}"


@pytest.mark.parametrize(
    ("ref", "name", "attr"),
    [("main", "main", "second"), ("dev", "dev", "third"), ("v1.0.0", "v1.0.0", "first"),
     ("v1.1.0", "v1.1.0", "second"), ("refs/heads/both", "both", "second"),
     ("refs/tags/both", "both", "second")],
)
def test_branches_and_tags(fixture_url: str, fixture_repo: Fixture, cache: Path, ref: str,
                           name: str, attr: str) -> None:
    commit = {"first": fixture_repo.first, "second": fixture_repo.second,
              "third": fixture_repo.dev}[attr]
    with GitSource(f"{fixture_url}@{ref}", cache_dir=cache) as source:
        revision = source.resolve()
        assert revision == f"{name}@sha1:{commit}"
        artifact = source.fetch(revision)
        assert artifact.metadata["commit"] == commit


@pytest.mark.parametrize(
    ("spec", "tag"),
    [("^1.0", "v1.1.0"), ("~1.0", "v1.0.0"), ("1.x", "v1.1.0"), (">=1.0.0 <2.0.0", "v1.1.0"),
     (">=1.2.0-rc.0 <2", "v1.2.0-rc.1"), ("*", "v2.0.0")],
)
def test_semver_picks_the_highest_matching_tag(fixture_url: str, cache: Path, spec: str,
                                               tag: str) -> None:
    with GitSource(f"{fixture_url}#semver={spec}", cache_dir=cache) as source:
        assert source.resolve().startswith(f"{tag}@sha1:")


def test_annotated_tags_resolve_to_their_commit(fixture_url: str, fixture_repo: Fixture,
                                                cache: Path) -> None:
    with GitSource(f"{fixture_url}@v2.0.0", cache_dir=cache) as source:
        artifact = source.fetch(source.resolve())
    assert artifact.revision == f"v2.0.0@sha1:{fixture_repo.dev}"
    assert artifact.metadata["ref"] == "refs/tags/v2.0.0"


def test_resolve_downloads_no_objects(http_server: GitHTTPServer, fixture_repo: Fixture,
                                      cache: Path) -> None:
    with GitSource(http_server.url(fixture_repo.name), cache_dir=cache) as source:
        before = len(http_server.requests)
        source.resolve()
        source.resolve()
        requests = http_server.requests[before:]
    assert requests and not any(fetching for _, _, fetching in requests)
    assert not (cache / "git" / "repos").exists(), "resolve() must not touch the cache"


def test_a_commit_pin_resolves_without_the_network(fixture_repo: Fixture, cache: Path) -> None:
    source = GitSource(f"git+git://127.0.0.1:1/nowhere.git@{fixture_repo.first}",
                       cache_dir=cache)
    assert source.resolve() == f"sha1:{fixture_repo.first}"


def test_the_remote_head_need_not_be_main(make_repo: MakeRepo, daemon: GitDaemon,
                                          cache: Path) -> None:
    repo = make_repo({"a.yaml": "a: 1\n"}, branch="trunk")
    with GitSource(daemon.url(repo.name), cache_dir=cache) as source:
        assert source.resolve() == f"trunk@sha1:{repo.work.head()}"


# -- fetch -------------------------------------------------------------------------------


def test_fetch_materializes_the_whole_tree_read_only_without_git_and_points_at_the_path(
    fixture_url: str, fixture_repo: Fixture, cache: Path
) -> None:
    with GitSource(f"{fixture_url}@main#path=apps", cache_dir=cache) as source:
        artifact = source.fetch(source.resolve())
    assert files_of(artifact.path) == {
        "config.yaml": APPS["apps/config.yaml"].replace("blue", "green"),
        "namespace.yaml": APPS["apps/namespace.yaml"],
    }
    assert artifact.root is not None and artifact.path == artifact.root / "apps"
    assert artifact.tree == artifact.root and (artifact.root / "docs" / "README.md").is_file()
    assert not (artifact.root / ".git").exists()
    assert not os.access(artifact.path / "config.yaml", os.W_OK) or os.geteuid() == 0
    assert (artifact.path.stat().st_mode & 0o222) == 0
    assert (artifact.root.stat().st_mode & 0o222) == 0
    assert artifact.digest == tree_digest(artifact.tree)
    assert artifact.url == f"{fixture_url}@main#path=apps"
    meta = artifact.metadata
    assert meta["message"] == "second: green"
    assert meta["author"] == "Gitops Test <test@example.com>"
    assert meta["date"].startswith("2023-11-14T22:15:20")
    assert meta["path"] == "apps" and meta["commit"] == fixture_repo.second


def test_fetching_twice_reuses_the_artifact(fixture_url: str, cache: Path) -> None:
    with GitSource(fixture_url, cache_dir=cache) as source:
        revision = source.resolve()
        first = source.fetch(revision)
    with GitSource(fixture_url, cache_dir=cache) as again:
        second = again.fetch(revision)
    assert (first.path, first.digest) == (second.path, second.digest)


def test_sources_of_one_repository_share_one_artifact(make_repo: MakeRepo, daemon: GitDaemon,
                                                      cache: Path) -> None:
    repo = make_repo({"apps/a.yaml": "a: 1\n", "base/b.yaml": "b: 1\n", "other.txt": "1\n"})
    with GitSource(daemon.url(repo.name) + "#path=apps", cache_dir=cache) as apps, \
            GitSource(daemon.url(repo.name) + "#path=base", cache_dir=cache) as base:
        first = apps.fetch(apps.resolve())
        assert base.fetch(base.resolve()).root == first.root
        repo.commit({"other.txt": "2\n"})
        revision = apps.resolve()
        second = apps.fetch(revision)
    assert revision != first.revision and second.root != first.root
    assert first.root is not None and second.root is not None
    # the unchanged file is shared with the earlier checkout, not written again
    assert (second.path / "a.yaml").stat().st_ino == (first.path / "a.yaml").stat().st_ino


def test_an_incremental_fetch_writes_only_what_changed(make_repo: MakeRepo, daemon: GitDaemon,
                                                       cache: Path) -> None:
    files = {f"apps/f{i:03d}.yaml": f"n: {i}\n" for i in range(50)}
    repo = make_repo(files)
    with GitSource(daemon.url(repo.name), cache_dir=cache) as source:
        first = source.fetch(source.resolve())
        repo.commit({"apps/f007.yaml": "n: changed\n"}, "one file")
        second = source.fetch(source.resolve())
    assert files_of(second.path) == {**files, "apps/f007.yaml": "n: changed\n"}
    assert files_of(first.path) == files, "the previous artifact must not change"
    same = [(first.path / name).stat().st_ino == (second.path / name).stat().st_ino
            for name in files]
    assert same.count(False) == 1, "unchanged files are hard-linked from the previous artifact"
    assert second.digest == tree_digest(second.path) != first.digest


def test_a_fresh_process_links_from_the_last_artifact(make_repo: MakeRepo, daemon: GitDaemon,
                                                      cache: Path) -> None:
    repo = make_repo({"a.yaml": "a: 1\n", "b.yaml": "b: 1\n"})
    with GitSource(daemon.url(repo.name), cache_dir=cache) as source:
        first = source.fetch(source.resolve())
    repo.commit({"b.yaml": "b: 2\n"})
    with GitSource(daemon.url(repo.name), cache_dir=cache) as source:
        second = source.fetch(source.resolve())
    assert (first.path / "a.yaml").stat().st_ino == (second.path / "a.yaml").stat().st_ino


def test_a_pushed_commit_is_fetched_incrementally(make_repo: MakeRepo,
                                                  http_server: GitHTTPServer,
                                                  cache: Path) -> None:
    repo = make_repo({f"f{i}.yaml": "".join(f"k{j}: {i * j * 7919 % 10007}\n"
                                            for j in range(200)) for i in range(20)})
    packs = cache / "git" / "repos"
    with GitSource(http_server.url(repo.name), cache_dir=cache) as source:
        source.fetch(source.resolve())
        [first] = packs.glob("*/objects/pack/*.pack")
        repo.commit({"f3.yaml": "x: 2\n"})
        source.fetch(source.resolve())
    [second] = set(packs.glob("*/objects/pack/*.pack")) - {first}
    assert second.stat().st_size * 20 < first.stat().st_size, "the second fetch was not thin"


def test_a_non_tip_commit_can_be_pinned(make_repo: MakeRepo, daemon: GitDaemon,
                                        cache: Path) -> None:
    repo = make_repo({"a.yaml": "v: 1\n"})
    old = repo.work.head()
    repo.commit({"a.yaml": "v: 2\n"})
    repo.commit({"a.yaml": "v: 3\n"})
    with GitSource(f"{daemon.url(repo.name)}@{old}", cache_dir=cache) as source:
        artifact = source.fetch(source.resolve())
    assert files_of(artifact.path) == {"a.yaml": "v: 1\n"}
    assert artifact.revision == f"sha1:{old}"


def test_protocol_v0_servers_get_a_full_fetch_for_unadvertised_commits(
    make_repo: MakeRepo, daemon: GitDaemon, cache: Path
) -> None:
    repo = make_repo({"a.yaml": "v: 1\n"})
    old = repo.work.head()
    repo.commit({"a.yaml": "v: 2\n"})
    with GitSource(f"{daemon.url(repo.name)}@{old}", cache_dir=cache,
                   protocol_version=0) as source:
        artifact = source.fetch(source.resolve())
    assert files_of(artifact.path) == {"a.yaml": "v: 1\n"}


def test_every_transport_fetches_the_same_tree(
    fixture_repo: Fixture, served: Path, daemon: GitDaemon, http_server: GitHTTPServer,
    cache: Path
) -> None:
    urls = [f"git+file://{served / fixture_repo.name}", daemon.url(fixture_repo.name),
            http_server.url(fixture_repo.name)]
    digests = set()
    for url in urls:
        with GitSource(f"{url}@main#path=apps", cache_dir=cache) as source:
            artifact = source.fetch(source.resolve())
            digests.add((artifact.revision, artifact.digest))
    assert len(digests) == 1


def test_concurrent_fetches_of_one_remote_are_safe(make_repo: MakeRepo, daemon: GitDaemon,
                                                   cache: Path) -> None:
    repo = make_repo({f"d{i}/f.yaml": f"i: {i}\n" for i in range(30)})
    results: list[object] = []

    def fetch() -> None:
        try:
            with GitSource(daemon.url(repo.name), cache_dir=cache) as source:
                results.append(source.fetch(source.resolve()).path)
        except Exception as exc:  # collected, asserted below
            results.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 4 and len(set(results)) == 1, results
    assert isinstance(results[0], Path)


def test_the_registry_opens_git_urls(fixture_url: str, cache: Path) -> None:
    with open_source(fixture_url) as source:
        assert isinstance(source, GitSource)
        assert source.resolve().startswith("main@sha1:")


# -- trees that must be refused ----------------------------------------------------------


def test_symlinks_inside_the_tree_are_kept(make_repo: MakeRepo, daemon: GitDaemon,
                                           cache: Path) -> None:
    repo = make_repo()
    repo.work.write({"apps/real.yaml": "a: 1\n"})
    repo.work.symlink("apps/link.yaml", "real.yaml")
    repo.work.commit("link")
    repo.publish()
    with GitSource(daemon.url(repo.name) + "#path=apps", cache_dir=cache) as source:
        artifact = source.fetch(source.resolve())
    assert os.readlink(artifact.path / "link.yaml") == "real.yaml"
    assert artifact.digest == tree_digest(artifact.tree)


@pytest.mark.parametrize(
    ("links", "bad"),
    [({"apps/evil.yaml": "/etc/passwd"}, "apps/evil.yaml"),
     ({"apps/evil.yaml": "../../../etc/passwd"}, "apps/evil.yaml"),
     ({"apps/up.yaml": "../../docs/readme.md"}, "apps/up.yaml"),
     ({"apps/x/d": "../..", "apps/chain": "x/d/.."}, "chain")],
)
def test_symlinks_leading_outside_are_refused(make_repo: MakeRepo, daemon: GitDaemon,
                                              cache: Path, links: dict[str, str],
                                              bad: str) -> None:
    repo = make_repo()
    repo.work.write({"apps/ok.yaml": "a: 1\n", "docs/readme.md": "x\n"})
    for link, target in links.items():
        repo.work.symlink(link, target)
    repo.work.commit("links")
    repo.publish()
    with GitSource(daemon.url(repo.name) + "#path=apps", cache_dir=cache) as source, \
            pytest.raises(SourceError, match="outside the fetched tree") as info:
        source.fetch(source.resolve())
    assert bad in str(info.value)
    assert not list((cache / "artifacts").glob("*")), "nothing may be left in the cache"


def test_lfs_pointers_are_refused(make_repo: MakeRepo, daemon: GitDaemon, cache: Path) -> None:
    pointer = ("version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64
               + "\nsize 12345\n")
    repo = make_repo({"apps/big.yaml": pointer, "apps/ok.yaml": "a: 1\n"})
    with GitSource(daemon.url(repo.name), cache_dir=cache) as source, \
            pytest.raises(SourceError, match=r"apps/big\.yaml is a Git LFS pointer"):
        source.fetch(source.resolve())


def test_git_entries_in_trees_are_refused(make_repo: MakeRepo, daemon: GitDaemon,
                                          cache: Path) -> None:
    repo = make_repo({"a.yaml": "a: 1\n"})
    blob = repo.work.git("hash-object", "-w", "--stdin", input=b"[core]\n").strip()
    inner = repo.work.git("mktree", input=f"100644 blob {blob}\tconfig\n".encode()).strip()
    root = repo.work.git("write-tree").strip()
    listing = repo.work.git("ls-tree", root) + f"040000 tree {inner}\t.git\n"
    tree = repo.work.git("mktree", input=listing.encode()).strip()
    commit = repo.work.git("commit-tree", tree, "-p", "HEAD", "-m", "evil").strip()
    repo.work.git("update-ref", "refs/heads/main", commit)
    repo.publish()
    with GitSource(daemon.url(repo.name), cache_dir=cache) as source, \
            pytest.raises(SourceError, match=r"\.git is not a valid file name"):
        source.fetch(source.resolve())


# -- submodules --------------------------------------------------------------------------


@pytest.fixture
def with_submodule(make_repo: MakeRepo, served: Path) -> tuple[Published, Published]:
    lib = make_repo({"lib.yaml": "lib: 1\n"})
    app = make_repo()
    app.work.write({"apps/app.yaml": "app: 1\n"})
    app.work.git("-c", "protocol.file.allow=always", "submodule", "add", "-q",
                 os.fspath(lib.bare), "apps/vendor")
    # the submodule's URL as a server would need it: relative to the superproject
    app.work.git("config", "-f", ".gitmodules", "submodule.apps/vendor.url", f"../{lib.name}")
    app.work.commit("add submodule")
    app.publish()
    return app, lib


def test_submodules_are_not_followed_unless_asked(with_submodule: tuple[Published, Published],
                                                  daemon: GitDaemon, cache: Path) -> None:
    app, _ = with_submodule
    with GitSource(daemon.url(app.name) + "#path=apps", cache_dir=cache) as source:
        artifact = source.fetch(source.resolve())
    assert (artifact.path / "vendor").is_dir() and not any((artifact.path / "vendor").iterdir())


def test_submodules_are_followed_when_asked(with_submodule: tuple[Published, Published],
                                            daemon: GitDaemon, cache: Path) -> None:
    app, _ = with_submodule
    with GitSource(daemon.url(app.name) + "#path=apps", cache_dir=cache,
                   recurse_submodules=True) as source:
        artifact = source.fetch(source.resolve())
    assert files_of(artifact.path) == {"app.yaml": "app: 1\n", "vendor/lib.yaml": "lib: 1\n"}


def test_remote_repositories_cannot_pull_in_local_submodules(
    with_submodule: tuple[Published, Published], daemon: GitDaemon, cache: Path
) -> None:
    app, lib = with_submodule
    app.work.git("config", "-f", ".gitmodules", "submodule.apps/vendor.url", os.fspath(lib.bare))
    app.work.commit("absolute path")
    app.publish()
    with GitSource(daemon.url(app.name), cache_dir=cache, recurse_submodules=True) as source, \
            pytest.raises(SourceError, match="points to a local path"):
        source.fetch(source.resolve())


# -- bad input: one clear error each -----------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "message"),
    [("@no-such-branch", "no branch or tag named 'no-such-branch'"),
     ("@v9.9.9", "no branch or tag named 'v9.9.9'"),
     ("@" + "0" * 40, "no commit 0000000000000000000000000000000000000000"),
     ("#path=nowhere", "path 'nowhere' does not exist"),
     ("#path=apps/config.yaml", "path 'apps/config.yaml' is not a directory"),
     ("#semver=>=5", "no tag matches")],
)
def test_unknown_refs_commits_and_paths(fixture_url: str, cache: Path, suffix: str,
                                        message: str) -> None:
    with GitSource(fixture_url + suffix, cache_dir=cache) as source, \
            pytest.raises(RevisionNotFoundError, match=message) as info:
        source.fetch(source.resolve())
    assert str(info.value).startswith(fixture_url)


def test_a_path_leaving_the_repository_is_refused_at_once(fixture_url: str) -> None:
    with pytest.raises(InvalidURLError, match=r"option path: .*must stay inside"):
        GitSource(fixture_url + "#path=apps/../../etc")
    with pytest.raises(InvalidURLError, match=r"option path: .*must be a relative path"):
        GitSource(fixture_url, path="/etc")


def test_a_malformed_revision_is_refused(fixture_url: str, cache: Path) -> None:
    with GitSource(fixture_url, cache_dir=cache) as source, \
            pytest.raises(RevisionNotFoundError, match="not a Git revision"):
        source.fetch("sha256:" + "0" * 64)


def test_a_missing_repository(daemon: GitDaemon, http_server: GitHTTPServer, served: Path,
                              cache: Path) -> None:
    for url in (daemon.url("missing.git"), http_server.url("missing.git"),
                f"git+file://{served}/missing.git"):
        with GitSource(url, cache_dir=cache) as source, \
                pytest.raises(SourceError, match=r"no (Git repository|such repository)"):
            source.resolve()


def test_unreachable_hosts_fail_within_the_timeout(cache: Path) -> None:
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (the kernel does), never answers
    port = listener.getsockname()[1]
    try:
        for url in (f"git+git://127.0.0.1:{port}/r.git", f"git+http://127.0.0.1:{port}/r.git"):
            started = time.monotonic()
            with GitSource(url, timeout=0.5, cache_dir=cache) as source, \
                    pytest.raises(SourceError, match=r"no answer within 0.5s"):
                source.resolve()
            assert time.monotonic() - started < 3
    finally:
        listener.close()
    with GitSource("git+git://127.0.0.1:1/r.git", cache_dir=cache) as source, \
            pytest.raises(SourceError, match="cannot connect: Connection refused"):
        source.resolve()


# -- cache bounds ------------------------------------------------------------------------


def test_the_cache_is_bounded_by_age_and_size(make_repo: MakeRepo, daemon: GitDaemon,
                                              cache: Path) -> None:
    old = make_repo({"a.yaml": "a: 1\n"})
    current = make_repo({"b.yaml": "b: 1\n" * 1000})
    with GitSource(daemon.url(old.name), cache_dir=cache) as source:
        stale = source.fetch(source.resolve())
    past = stale.path.stat().st_mtime - 30 * 24 * 3600
    os.utime(stale.path, (past, past))
    for used in (cache / "git" / "repos").glob("*/gitops-used"):
        os.utime(used, (past, past))
    with GitSource(daemon.url(current.name), cache_dir=cache,
                   cache_max_age=7 * 24 * 3600) as source:
        kept = source.fetch(source.resolve())  # the fetch grew the cache: bounds applied
        assert not stale.path.exists(), "the stale artifact outlived the fetch"
        assert len(list((cache / "git" / "repos").iterdir())) == 1, "the stale mirror stays"
        assert source.prune_cache() == ([], [])
        assert kept.path.is_dir(), "the artifact in use is never pruned"
        assert source.fetch(source.resolve()).path == kept.path
    with GitSource(daemon.url(current.name), cache_dir=cache, cache_max_bytes=1) as source:
        source.fetch(source.resolve())
        assert source.prune_cache() == ([], []), "what is in use stays, whatever the bound"


@pytest.mark.parametrize("ignore", [None, "*.md\n!keep.md\n"])
def test_the_digest_is_the_directory_digest_of_the_same_content(
    make_repo: MakeRepo, daemon: GitDaemon, cache: Path, ignore: str | None
) -> None:
    files = {".hidden.yaml": "h\n", "a-b.yaml": "1\n", "a/b.yaml": "2\n", "a.b.yaml": "3\n",
             "a/.env": "secret\n", ".github/ci.yaml": "x\n", "Z.yaml": "z\n", "é.yaml": "e\n",
             "notes.md": "n\n", "keep.md": "k\n", "exec.sh": "#!/bin/sh\n"}
    if ignore is not None:
        files[".sourceignore"] = ignore
    repo = make_repo(files)
    with GitSource(daemon.url(repo.name), cache_dir=cache) as source:
        first = source.fetch(source.resolve())
        repo.commit({"a/b.yaml": "changed\n"})
        second = source.fetch(source.resolve())
    assert first.digest == tree_digest(first.path)
    assert second.digest == tree_digest(second.path) != first.digest


def test_viable_reports_missing_programs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GitSource.viable() == (True, "")
    monkeypatch.setattr("gitops.sources.git.source.gpg_available", lambda: False)
    ok, why = GitSource.viable()
    assert ok and "gpg not found" in why


def test_a_mirror_with_too_many_packs_starts_afresh(make_repo: MakeRepo, daemon: GitDaemon,
                                                    cache: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gitops.sources.git.mirror.MAX_PACKS", 2)
    repo = make_repo({"a.yaml": "v: 0\n", "b.yaml": "b\n"})
    with GitSource(daemon.url(repo.name), cache_dir=cache) as source:
        for version in range(1, 6):
            repo.commit({"a.yaml": f"v: {version}\n"})
            artifact = source.fetch(source.resolve())
            assert files_of(artifact.path) == {"a.yaml": f"v: {version}\n", "b.yaml": "b\n"}
    assert len(list(cache.glob("git/repos/*/objects/pack/*.pack"))) <= 3


# -- how a checkout is written -------------------------------------------------------------

MANY = {f"{d}/f{i:03d}.yaml": f"n: {i}\nd: {d}\n" for d in ("a", "b/c", "b/d") for i in range(40)}


def modes_of(root: Path) -> set[tuple[str, int]]:
    return {("dir" if p.is_dir() else "file", p.lstat().st_mode & 0o7777)
            for p in [root, *root.rglob("*")] if not p.is_symlink()}


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000])
def test_artifacts_are_read_only_whatever_the_umask(make_repo: MakeRepo, daemon: GitDaemon,
                                                    cache: Path, umask: int) -> None:
    repo = make_repo()
    repo.work.write({**MANY, "run.sh": "#!/bin/sh\n"})
    (repo.work.path / "run.sh").chmod(0o755)
    repo.work.commit("with an executable")
    repo.publish()
    assert repo.work.git("ls-files", "-s", "run.sh").startswith("100755")
    old = os.umask(umask)
    try:
        with GitSource(daemon.url(repo.name), cache_dir=cache) as source:
            artifact = source.fetch(source.resolve())
    finally:
        os.umask(old)
    assert modes_of(artifact.path) == {("dir", 0o555), ("file", 0o444)}
    assert files_of(artifact.path) == {**MANY, "run.sh": "#!/bin/sh\n"}


def test_fetched_blobs_are_written_without_reading_the_pack_again(
    make_repo: MakeRepo, daemon: GitDaemon, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pack_reads(*args: object, **kwargs: object) -> None:
        raise AssertionError("the checkout read blobs from the pack")

    monkeypatch.setattr("gitops.sources.git.checkout.UnpackedObjectIterator.for_pack_subset",
                        no_pack_reads)
    repo = make_repo(MANY)
    with GitSource(daemon.url(repo.name), cache_dir=cache) as source:
        artifact = source.fetch(source.resolve())
    assert files_of(artifact.path) == MANY and artifact.digest == tree_digest(artifact.path)


@pytest.mark.parametrize("limit", ["MAX_PACK_BYTES", "MAX_INFLATED_BYTES"])
def test_packs_too_large_to_hold_in_memory_are_read_back(
    make_repo: MakeRepo, daemon: GitDaemon, cache: Path, monkeypatch: pytest.MonkeyPatch,
    limit: str
) -> None:
    monkeypatch.setattr(f"gitops.sources.git.packs.{limit}", 100)
    repo = make_repo(MANY)
    with GitSource(daemon.url(repo.name), cache_dir=cache) as source:
        first = source.fetch(source.resolve())
        repo.commit({"a/f001.yaml": "changed\n"})
        second = source.fetch(source.resolve())
    assert files_of(first.path) == MANY and first.digest == tree_digest(first.path)
    assert files_of(second.path) == {**MANY, "a/f001.yaml": "changed\n"}
    assert second.digest == tree_digest(second.path)


def test_a_failed_write_leaves_no_artifact(make_repo: MakeRepo, daemon: GitDaemon, cache: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from gitops.sources.git import checkout

    real = checkout._write_files

    def failing(batch: list[tuple[str, bytes]], chmod: bool) -> None:
        if any(path.endswith("/b/d/f007.yaml") for path, _ in batch):
            raise OSError(28, "No space left on device")
        real(batch, chmod)

    monkeypatch.setattr(checkout, "_write_files", failing)
    repo = make_repo(MANY)
    with GitSource(daemon.url(repo.name), cache_dir=cache) as source, \
            pytest.raises(OSError, match="No space left"):
        source.fetch(source.resolve())
    assert list((cache / "artifacts").iterdir()) == []
    assert list((cache / "tmp").iterdir()) == []
    monkeypatch.setattr(checkout, "_write_files", real)
    with GitSource(daemon.url(repo.name), cache_dir=cache) as source:
        assert files_of(source.fetch(source.resolve()).path) == MANY


def test_files_that_cannot_be_linked_from_the_last_artifact_are_written(
    make_repo: MakeRepo, daemon: GitDaemon, cache: Path
) -> None:
    repo = make_repo(MANY)
    with GitSource(daemon.url(repo.name), cache_dir=cache) as source:
        first = source.fetch(source.resolve())
        (first.path / "b" / "d").chmod(0o755)
        (first.path / "b" / "d" / "f003.yaml").unlink()  # as if damaged meanwhile
        repo.commit({"a/f001.yaml": "changed\n"})
        second = source.fetch(source.resolve())
    assert files_of(second.path) == {**MANY, "a/f001.yaml": "changed\n"}
    assert second.digest == tree_digest(second.path)
    assert modes_of(second.path) == {("dir", 0o555), ("file", 0o444)}
    linked = [name for name in MANY if name not in ("a/f001.yaml", "b/d/f003.yaml")]
    assert all((first.path / name).stat().st_ino == (second.path / name).stat().st_ino
               for name in linked)
