"""``git+file://`` refs read straight from the files agree with dulwich's full read."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.sources.git import refs as refspec
from gitops.sources.git.credentials import Credentials
from gitops.sources.git.localrefs import read_local_refs
from gitops.sources.git.transport import Remote, RemoteRefs
from gitops.sources.git.url import parse_git_url
from gitops.testing.gitserver import WorkRepo


@pytest.fixture
def repo(tmp_path: Path, git_home: Path) -> WorkRepo:
    work = WorkRepo(tmp_path / "work", home=git_home)
    work.write({"a.yaml": "a: 1\n"})
    work.commit("one")
    work.tag("v1.0.0")
    work.tag("v1.1.0", annotated=True)
    work.git("pack-refs", "--all")  # these two live in packed-refs, peeled
    work.write({"a.yaml": "a: 2\n"})
    work.commit("two")
    work.tag("v1.2.0", annotated=True)  # loose and annotated: peeled by reading the object
    work.tag("v2.0.0")
    work.branch("feature/x")
    work.write({"b.yaml": "b: 1\n"})
    work.commit("three")
    work.switch("main")
    return work


def dulwich_refs(path: Path) -> RemoteRefs:
    remote = Remote(parse_git_url(f"git+file://{path}"), Credentials(), timeout=5)
    return remote.ls_refs(None)  # no prefixes: dulwich's own full read


@pytest.mark.parametrize("where", ["work", "bare"])
@pytest.mark.parametrize("url_tail", ["", "@main", "@feature/x", "@v1.1.0", "@v1.2.0",
                                      "@refs/tags/v1.0.0", "#semver=^1", "#semver=>=2"])
def test_direct_read_selects_what_the_full_read_selects(
    repo: WorkRepo, tmp_path: Path, where: str, url_tail: str
) -> None:
    path = repo.path
    if where == "bare":
        path = tmp_path / "bare.git"
        repo.push(path)
    spec = parse_git_url(f"git+file://{path}{url_tail}")
    local = read_local_refs(str(path), refspec.prefixes_for(spec))
    assert local is not None
    direct = RemoteRefs(*local, protocol_version=2)
    assert refspec.select(spec, direct) == refspec.select(spec, dulwich_refs(path))


def test_loose_refs_win_over_packed_ones_and_heads_follow_symrefs(repo: WorkRepo) -> None:
    before = repo.head("main")
    repo.git("pack-refs", "--all")
    repo.write({"c.yaml": "c: 1\n"})
    after = repo.commit("four")  # refs/heads/main is loose again, packed-refs stale
    assert after != before
    local = read_local_refs(str(repo.path), ["HEAD"])
    assert local is not None
    refs, _, head = local
    assert head == "refs/heads/main" and refs["HEAD"] == refs["refs/heads/main"] == after


def test_unusual_layouts_take_the_general_path(repo: WorkRepo, tmp_path: Path) -> None:
    linked = tmp_path / "linked"
    repo.git("worktree", "add", "-q", str(linked), "feature/x")
    assert read_local_refs(str(linked), ["HEAD"]) is None  # a linked worktree: commondir
    assert read_local_refs(str(tmp_path / "nothing"), ["HEAD"]) is None
    # the general path still answers for the linked worktree
    remote = Remote(parse_git_url(f"git+file://{linked}"), Credentials(), timeout=5)
    assert remote.ls_refs(["HEAD"]).refs["HEAD"] == repo.head("feature/x")
