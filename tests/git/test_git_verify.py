"""Commit and tag signature verification with real gpg: refused before anything is rendered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gitrepos import Published

from gitops import Reconciler
from gitops.errors import InputError, VerificationError
from gitops.sources.git import GitSource
from gitops.testing.gitserver import GitDaemon, GpgKey

MakeRepo = Callable[..., Published]
CONFIG = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: signed\n  namespace: default\n"


@pytest.fixture
def signed(make_repo: MakeRepo, gpg_key: GpgKey) -> Published:
    """main: a signed commit tagged v1 (signed) and v1-light; branch unsigned on top."""
    repo = make_repo(gnupghome=gpg_key.home)
    repo.work.write({"apps/cm.yaml": CONFIG})
    repo.work.commit("signed", sign=gpg_key.fingerprint)
    repo.work.tag("v1", sign=gpg_key.fingerprint)
    repo.work.tag("v1-light")
    repo.work.tag("v1-annotated", annotated=True)
    repo.work.branch("unsigned")
    repo.work.write({"apps/cm.yaml": CONFIG + "data:\n  x: y\n"})
    repo.work.commit("not signed")
    repo.work.switch("main")
    repo.publish()
    return repo


def source(daemon: GitDaemon, repo: Published, suffix: str, cache: Path, key: GpgKey,
           mode: str = "head") -> GitSource:
    return GitSource(daemon.url(repo.name) + suffix, cache_dir=cache, verify=mode,
                     public_keys=[key.public])


def test_a_signed_commit_is_verified(signed: Published, daemon: GitDaemon, gpg_key: GpgKey,
                                     cache: Path) -> None:
    with source(daemon, signed, "@main", cache, gpg_key) as git:
        artifact = git.fetch(git.resolve())
    assert artifact.metadata["verified"] == f"commit signed by {gpg_key.fingerprint}"


def test_public_keys_may_be_files(signed: Published, daemon: GitDaemon, gpg_key: GpgKey,
                                  tmp_path: Path, cache: Path) -> None:
    key_file = tmp_path / "key.asc"
    key_file.write_text(gpg_key.public)
    with GitSource(daemon.url(signed.name), cache_dir=cache, verify="HEAD",
                   public_keys=[key_file]) as git:
        git.fetch(git.resolve())


def test_an_unsigned_commit_is_refused_and_nothing_is_written(
    signed: Published, daemon: GitDaemon, gpg_key: GpgKey, cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with source(daemon, signed, "@unsigned#path=apps", cache, gpg_key) as git, \
            Reconciler(git, f"dir:{out}") as reconciler, \
            pytest.raises(VerificationError, match=r"commit [0-9a-f]{40} is not signed"):
        reconciler.sync()
    assert not out.exists() or not any(out.rglob("*.yaml"))
    assert not (cache / "artifacts").exists() or not any((cache / "artifacts").iterdir())


def test_a_commit_signed_by_an_untrusted_key_is_refused(
    signed: Published, daemon: GitDaemon, gpg_key: GpgKey, stranger_gpg_key: GpgKey, cache: Path
) -> None:
    with source(daemon, signed, "", cache, stranger_gpg_key) as git, \
            pytest.raises(VerificationError, match="not one of the trusted public keys"):
        git.fetch(git.resolve())


def test_a_tampered_commit_has_a_bad_signature(signed: Published, daemon: GitDaemon,
                                               gpg_key: GpgKey, cache: Path) -> None:
    work = signed.work
    raw = work.git("cat-file", "commit", "HEAD").replace("signed\n", "tampered\n")
    forged = work.git("hash-object", "-t", "commit", "-w", "--stdin", input=raw.encode()).strip()
    work.git("update-ref", "refs/heads/forged", forged)
    signed.publish()
    with source(daemon, signed, "@forged", cache, gpg_key) as git, \
            pytest.raises(VerificationError, match="BAD signature"):
        git.fetch(git.resolve())


def test_a_signed_tag_is_verified(signed: Published, daemon: GitDaemon, gpg_key: GpgKey,
                                  cache: Path) -> None:
    for mode in ("tag", "tag_and_head"):
        with source(daemon, signed, "@v1", cache, gpg_key, mode) as git:
            note = git.fetch(git.resolve()).metadata["verified"]
        assert note.startswith(f"tag v1 signed by {gpg_key.fingerprint}")
        assert ("commit signed by" in note) == (mode == "tag_and_head")


def test_tag_verification_in_a_fresh_process(signed: Published, daemon: GitDaemon,
                                             gpg_key: GpgKey, cache: Path) -> None:
    with source(daemon, signed, "@v1", cache, gpg_key, "tag") as git:
        revision = git.resolve()
    with source(daemon, signed, "@v1", cache, gpg_key, "tag") as fresh:
        assert "tag v1 signed" in fresh.fetch(revision).metadata["verified"]


@pytest.mark.parametrize(
    ("suffix", "message"),
    [("@v1-light", "lightweight tag"), ("@v1-annotated", "tag v1-annotated is not signed"),
     ("@main", "main is not a tag")],
)
def test_tag_mode_needs_a_signed_annotated_tag(signed: Published, daemon: GitDaemon,
                                               gpg_key: GpgKey, cache: Path, suffix: str,
                                               message: str) -> None:
    with source(daemon, signed, suffix, cache, gpg_key, "tag") as git, \
            pytest.raises(VerificationError, match=message):
        git.fetch(git.resolve())


def test_verification_options_are_checked_up_front(daemon: GitDaemon, gpg_key: GpgKey) -> None:
    with pytest.raises(InputError, match="needs public_keys"):
        GitSource(daemon.url("x.git"), verify="head")
    with pytest.raises(InputError, match="without verify"):
        GitSource(daemon.url("x.git"), public_keys=[gpg_key.public])
    with pytest.raises(InputError, match="commit pin has none"):
        GitSource(daemon.url("x.git") + "@" + "0" * 40, verify="tag", public_keys=[gpg_key.public])
    with pytest.raises(InputError, match=r"public key file /no/such/key\.asc does not exist"):
        GitSource(daemon.url("x.git"), verify="head", public_keys=["/no/such/key.asc"])
    with pytest.raises(InputError, match="unknown verify mode"):
        GitSource(daemon.url("x.git"), verify="sometimes", public_keys=[gpg_key.public])


def test_a_key_file_without_keys_is_an_input_error(signed: Published, daemon: GitDaemon,
                                                   tmp_path: Path, cache: Path) -> None:
    junk = tmp_path / "junk.asc"
    junk.write_text("not a key\n")
    with GitSource(daemon.url(signed.name), cache_dir=cache, verify="head",
                   public_keys=[junk]) as git, pytest.raises(InputError, match="public_keys"):
        git.fetch(git.resolve())


def test_the_command_line_asks_for_verification_through_the_environment(
    signed: Published, daemon: GitDaemon, gpg_key: GpgKey, tmp_path: Path, cache: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gitops.cli import main

    key_file = tmp_path / "key.asc"
    key_file.write_text(gpg_key.public)
    monkeypatch.setenv("GITOPS_GIT_VERIFY", "head")
    monkeypatch.setenv("GITOPS_GIT_PUBLIC_KEYS", str(key_file))
    out = f"dir:{tmp_path / 'out'}"
    assert main(["sync", daemon.url(signed.name) + "@main#path=apps", out]) == 0
    assert main(["sync", daemon.url(signed.name) + "@unsigned#path=apps", out]) == 2
    assert "is not signed" in capsys.readouterr().err
