"""``gitops image update GIT_URL@BRANCH -f policies.yaml [-o json]`` with a real registry
(tags pushed by ``gitops push``) and a real Git server accepting pushes."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from images_git import Bare, marker, new_bare

from gitops.cli import main
from gitops.errors import InputError
from gitops.images.update_cli import cmd_update
from gitops.sources.oci import push
from gitops.testing.gitserver import GitDaemon, GitHTTPServer
from gitops.testing.registry import LocalRegistry, registry_binary


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    if registry_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-registry is not installed")
        pytest.skip("docker-registry is not installed")
    registry = LocalRegistry(tmp_path_factory.mktemp("registry")).start()
    content = tmp_path_factory.mktemp("content")
    (content / "x.txt").write_text("x")
    for tag in ("1.0.0", "1.4.0", "2.0.0-rc.1", "latest"):
        push(content, registry.url("acme/web", tag))
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def daemon(served: Path) -> Iterator[GitDaemon]:
    with GitDaemon(served, receive_pack=True).start() as server:
        yield server


@pytest.fixture(scope="module")
def http(served: Path) -> Iterator[GitHTTPServer]:
    with GitHTTPServer(served, password="hunter2-Secret").start() as server:
        yield server


def policies(tmp_path: Path, registry: LocalRegistry, extra: str = "",
             namespace: str = "default") -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(
        "apiVersion: gitops.dev/v1alpha1\nkind: ImagePolicy\n"
        f"metadata: {{name: web, namespace: {namespace}}}\n"
        f"spec:\n  image: {registry.host}/acme/web\n  policy:\n    semver: {{range: '>=1.0.0'}}\n"
        + extra)
    return path


@pytest.fixture
def repo(served: Path, home: Path, tmp_path: Path, registry: LocalRegistry) -> Bare:
    files = {"deploy/web.yaml": f"image: {registry.host}/acme/web:1.0.0 "
                                f"# {marker('default:web')}\n",
             "deploy/other.yaml": f"image: other:1 # {marker('other:thing')}\n"}
    return new_bare(served, home, files, tmp=tmp_path)


def run(url: str, files: list[Path], output: str = "text", **extra: object) -> tuple[int, str]:
    out = io.StringIO()
    args = argparse.Namespace(repository=url, file=[os.fspath(f) for f in files], output=output,
                              **extra)
    return cmd_update(args, out), out.getvalue()


def test_update_pushes_the_chosen_tag_once_and_then_nothing(
    repo: Bare, daemon: GitDaemon, registry: LocalRegistry, tmp_path: Path
) -> None:
    file = policies(tmp_path, registry)
    code, text = run(daemon.url(repo.name) + "@main", [file], "json")
    document = json.loads(text)
    assert code == 0 and document["pushed"] is True and document["branch"] == "main"
    # docs/images.md: the keys shown, the URL without @BRANCH (that is "branch")
    assert set(document) == {"url", "branch", "commit", "pushed", "attempts", "images",
                             "changes", "unknown"}
    assert document["url"] == daemon.url(repo.name) and document["attempts"] == 1
    assert document["commit"] == repo.head()
    assert document["changes"] == [{
        "file": "deploy/web.yaml", "line": 1, "policy": "default:web", "field": "image",
        "old": f"{registry.host}/acme/web:1.0.0", "new": f"{registry.host}/acme/web:1.4.0"}]
    assert document["images"][0]["tag"] == "1.4.0"
    assert document["unknown"] == [{"file": "deploy/other.yaml", "line": 1,
                                    "policy": "other:thing"}]
    assert repo.show("main", "deploy/web.yaml") == (
        f"image: {registry.host}/acme/web:1.4.0 # {marker('default:web')}\n")

    code, text = run(daemon.url(repo.name) + "@main", [file])
    assert code == 0 and "up to date, nothing to commit" in text
    assert "deploy/other.yaml:1: no image policy other:thing here; marker left alone" in text
    assert repo.head() == document["commit"]


def test_a_declared_automation_gives_the_commit_settings(
    repo: Bare, daemon: GitDaemon, registry: LocalRegistry, tmp_path: Path
) -> None:
    automation = (
        "---\napiVersion: gitops.dev/v1alpha1\nkind: ImageUpdateAutomation\n"
        "metadata: {name: auto, namespace: default}\n"
        "spec:\n  git:\n    url: git+file:///ignored.git\n    checkout: {ref: {branch: x}}\n"
        "    commit:\n      author: {name: Release Bot, email: release@example.com}\n"
        "      messageTemplate: 'chore: $images'\n"
        "    push: {branch: image-updates}\n  update: {path: deploy, pinDigest: true}\n")
    file = policies(tmp_path, registry, automation)
    code, text = run(daemon.url(repo.name) + "@main", [file])
    assert code == 0 and "pushed" in text
    assert repo.head("image-updates") is not None
    message = repo.git("log", "-1", "--format=%an|%B", "image-updates").strip()
    assert message.startswith(f"Release Bot|chore: {registry.host}/acme/web:1.4.0@sha256:")


def test_the_branch_is_required_and_errors_name_the_url_without_credentials(
    repo: Bare, http: GitHTTPServer, registry: LocalRegistry, tmp_path: Path,
    caplog: pytest.LogCaptureFixture
) -> None:
    file = policies(tmp_path, registry)
    secret_url = http.url(repo.name, private=True, userinfo=f"gitops:{http.password}")
    with pytest.raises(InputError, match="give the branch") as missing:
        run(secret_url, [file])
    assert http.password not in str(missing.value)

    caplog.set_level(logging.DEBUG)
    code, text = run(secret_url + "@main", [file], "json")
    assert code == 0 and json.loads(text)["pushed"] is True
    code, plain = run(secret_url + "@main", [file])
    for shown in (text, plain, caplog.text, repo.git("log", "-p", "main")):
        assert http.password not in shown


def test_the_command_line_runs_it(repo: Bare, daemon: GitDaemon, registry: LocalRegistry,
                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = policies(tmp_path, registry)
    code = main(["image", "update", daemon.url(repo.name) + "@main", "-f", os.fspath(file),
                 "--push-branch", "bump", "--author-name", "CLI Bot", "--message",
                 "bump to $images", "-o", "json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0 and document["branch"] == "bump" and document["commit"] == repo.head("bump")
    assert repo.git("log", "-1", "--format=%an|%s", "bump").strip() == (
        f"CLI Bot|bump to {registry.host}/acme/web:1.4.0")
    code = main(["image", "update", daemon.url(repo.name), "-f", os.fspath(file)])
    assert code == 2 and "give the branch to update" in capsys.readouterr().err


def test_without_an_automation_every_policy_applies_and_with_one_its_namespace_only(
    repo: Bare, daemon: GitDaemon, registry: LocalRegistry, tmp_path: Path
) -> None:
    elsewhere = policies(tmp_path, registry, namespace="other")
    repo.work.git("pull", "-q", "--ff-only", os.fspath(repo.path), "main")
    repo.work.write({"deploy/other.yaml": f"image: other:1 # {marker('other:web')}\n"})
    repo.work.commit("a marker for other:web")
    repo.work.git("push", "-q", os.fspath(repo.path), "HEAD:refs/heads/main")
    code, text = run(daemon.url(repo.name) + "@main", [elsewhere], "json")
    assert code == 0
    assert [c["file"] for c in json.loads(text)["changes"]] == ["deploy/other.yaml"]

    automation = ("---\napiVersion: gitops.dev/v1alpha1\nkind: ImageUpdateAutomation\n"
                  "metadata: {name: auto, namespace: default}\nspec:\n  git:\n"
                  "    url: git+file:///ignored.git\n    checkout: {ref: {branch: x}}\n"
                  "    commit: {author: {name: a, email: a@example.com}}\n")
    with pytest.raises(InputError, match="no ImagePolicy in namespace default to apply"):
        run(daemon.url(repo.name) + "@main", [policies(tmp_path, registry, automation,
                                                       namespace="other")])


@pytest.mark.parametrize(("options", "said"), [
    (["--push-branch", "bad..name"], "--push-branch: not a valid branch name"),
    (["--path", "../elsewhere"], "--path: must stay inside"),
    (["--author-name", "a <b@example.com>"], "--author-name/--author-email: a commit author"),
])
def test_a_bad_option_is_one_clear_error_naming_it(
    options: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "policies.yaml"
    file.write_text("apiVersion: gitops.dev/v1alpha1\nkind: ImagePolicy\n"
                    "metadata: {name: web}\nspec:\n  image: 127.0.0.1:1/acme/web\n"
                    "  policy: {semver: {range: '>=1.0.0'}}\n")
    code = main(["image", "update", "git+file:///nowhere.git@main", "-f", os.fspath(file),
                 *options])
    err = capsys.readouterr().err
    assert code == 2 and said in err, err
    assert "internal error" not in err and "input_value" not in err
