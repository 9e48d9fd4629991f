"""``gitops image scan``: the chosen tag in text and JSON, on a real registry; clear errors."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitops.cli import main
from gitops.sources.oci import push
from gitops.testing.registry import LocalRegistry, free_port, registry_binary

SECRET = "hunter2-Secret-pw"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    binary = registry_binary()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-registry is not installed; CI must run these tests")
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    reg = LocalRegistry(tmp_path_factory.mktemp("img-cli"), binary=binary).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def pushed(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[str, dict[str, str]]:
    """A repository with release, pre-release, build and other tags; tag -> digest."""
    repo = f"cli/{uuid.uuid4().hex[:8]}"
    digests = {}
    tags = ["1.0.0", "v1.4.0", "1.5.0-rc.1", "2.0.0", "latest",
            "main-abc123-1700000100", "main-def456-1700000300", "main-0a0a0a-1700000200"]
    for tag in tags:
        folder = tmp_path_factory.mktemp("content")
        (folder / "tag.yaml").write_text(f"tag: {tag}\n")
        digests[tag] = push(folder, registry.url(repo, tag)).digest
    return f"oci://{registry.host}/{repo}", digests


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GITOPS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["image", "scan", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_scan_prints_the_chosen_tag(capsys: pytest.CaptureFixture[str],
                                    pushed: tuple[str, dict[str, str]]) -> None:
    image, digests = pushed
    assert run(capsys, image, "--policy", "semver:^1.0") == (0, "v1.4.0\n", "")
    assert run(capsys, image, "--policy", "semver:>=1.0.0-0 <2.0.0")[1] == "1.5.0-rc.1\n"
    assert run(capsys, image, "--policy", "alphabetical:desc")[1] == "1.0.0\n"
    code, out, _ = run(capsys, image, "--policy", "numerical:asc", "--filter-tags",
                       r"^main-[a-f0-9]+-(?<ts>[0-9]+)$", "--extract", "$ts", "--digest")
    assert (code, out) == (0, f"main-def456-1700000300@{digests['main-def456-1700000300']}\n")


def test_scan_json_has_tag_digest_and_tags(capsys: pytest.CaptureFixture[str],
                                           pushed: tuple[str, dict[str, str]]) -> None:
    image, digests = pushed
    code, out, err = run(capsys, image, "--policy", "semver:*", "-o", "json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["tag"] == "2.0.0" and data["digest"] == digests["2.0.0"]
    assert sorted(data["tags"]) == sorted(digests)
    assert data["image"] == image and data["policy"] == "semver:*"
    assert data["cached"] is False and data["round_trips"] == 2  # tag list, digest
    again = json.loads(run(capsys, image, "--policy", "semver:*", "-o", "json")[1])
    assert again["cached"] is True and again["round_trips"] == 1  # the digest only
    fresh = json.loads(run(capsys, image, "--policy", "semver:*", "-o", "json", "--refresh")[1])
    assert fresh["cached"] is False


def test_scan_uses_the_cache_under_gitops_cache_dir(
    capsys: pytest.CaptureFixture[str], pushed: tuple[str, dict[str, str]], cache: Path
) -> None:
    run(capsys, pushed[0], "--policy", "semver:*")
    assert len(list((cache / "image-tags").iterdir())) == 1


def test_scan_errors_are_one_line_naming_the_image(
    capsys: pytest.CaptureFixture[str], registry: LocalRegistry,
    pushed: tuple[str, dict[str, str]],
) -> None:
    image, _ = pushed
    host = registry.host
    cases = [
        ([f"oci://bot:{SECRET}@{host}/cli/absent", "--policy", "semver:*"],
         f"oci://{host}/cli/absent: repository cli/absent not found on {host}"),
        ([f"oci://127.0.0.1:{free_port()}/team/app", "--policy", "semver:*"],
         "/team/app: registry 127.0.0.1:"),
        ([image, "--policy", "semver:>=>=1"], "--policy semver: invalid semver range"),
        ([image, "--policy", "newest"], "--policy must be semver:RANGE"),
        ([image, "--policy", "numerical:up"], "--policy numerical:"),
        ([image, "--policy", "semver:*", "--filter-tags", "(?<ts>"],
         "--filter-tags/--extract: invalid regular expression"),
        ([image, "--policy", "semver:*", "--filter-tags", "^(?P<ts>.*)$", "--extract", "$x"],
         "filterTags.extract names group x"),
        ([image, "--policy", "semver:*", "--extract", "$ts"], "--extract needs --filter-tags"),
        ([image, "--policy", "semver:>=9"], f"{image}: no tag matches semver:>=9 (8 tags"),
        ([image, "--policy", "semver:*", "--exclude", "[x"], "exclusion list entry 0"),
        (["oci://host/app:1.0", "--policy", "semver:*"], "oci://host/app:1.0: an image is"),
    ]
    for args, expected in cases:
        code, out, err = run(capsys, *args)
        assert code == 2, (args, err)
        assert expected in err and err.startswith("gitops: error: ") and err.count("\n") == 1
        assert SECRET not in out + err
        code, out, err = run(capsys, *args, "-o", "json")
        assert code == 2 and expected in json.loads(out)["error"] and SECRET not in out + err


def test_image_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image"]) == 2
    assert "COMMAND" in capsys.readouterr().err
