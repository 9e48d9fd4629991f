"""The CLI as a newcomer meets it: pipes, JSON errors, hints, failed syncs, Ctrl-C (issue 8)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from test_cli import EXAMPLE, GITOPS, run


@pytest.fixture
def app(tmp_path: Path) -> Path:
    dest = tmp_path / "app"
    shutil.copytree(EXAMPLE, dest)
    return dest


def test_a_closed_pipe_is_a_quiet_exit(app: Path, tmp_path: Path) -> None:
    shell = f"'{GITOPS}' diff '{app}' 'dir:{tmp_path / 'out'}' | head -1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.startswith("Source:")
    assert done.stderr == "", done.stderr
    assert done.returncode == 1, "diff's own exit code: differences"


def test_a_closed_stdout_never_aborts_a_sync_halfway(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shell = f"'{GITOPS}' sync '{app}' 'dir:{out}' --prune | head -c 10 >/dev/null"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert run("diff", str(app), f"dir:{out}").returncode == 0, "the sync finished"


def test_json_output_is_one_object_even_for_errors(tmp_path: Path) -> None:
    result = run("diff", str(tmp_path / "missing"), f"dir:{tmp_path / 'out'}", "-o", "json")
    assert result.returncode == 2
    data = json.loads(result.stdout)
    assert data["exit"] == 2 and "missing" in data["error"]


def test_a_failed_sync_is_summarized_once_per_resource(app: Path) -> None:
    result = run("sync", str(app), "mock:?failure_rate=1&transient=false&methods=apply")
    assert result.returncode == 2
    failed = [line for line in result.stdout.splitlines() if line.startswith("failed: ")]
    assert failed and all("(from " in line and ".yaml (document" in line for line in failed)
    assert result.stdout.rstrip().splitlines()[-1].startswith("Sync failed:")
    assert result.stderr == "", "no logging repeats of what the summary says"
    data = json.loads(run("sync", str(app), "mock:?failure_rate=1&transient=false&methods=apply",
                          "-o", "json").stdout)
    assert data["exit"] == 2 and data["succeeded"] is False and "failed" in data["error"]


@pytest.mark.parametrize(
    ("source", "hint"),
    [
        ("https://example.com/org/repo.git", "git+https://example.com/org/repo.git"),
        ("git@example.com:org/repo.git", "git+ssh://git@example.com/org/repo.git"),
    ],
)
def test_git_urls_written_as_git_writes_them_get_a_hint(
    source: str, hint: str, tmp_path: Path
) -> None:
    result = run("diff", source, f"dir:{tmp_path / 'out'}")
    assert result.returncode == 2 and hint in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "source", ["https://me:hunter2%40x@example.com/org/repo.git", "https://TOKENhunter2@example.com/r"]
)
def test_the_hint_for_a_git_url_never_repeats_its_credentials(source: str, tmp_path: Path) -> None:
    result = run("diff", source, f"dir:{tmp_path / 'out'}", "-o", "json")
    assert result.returncode == 2 and "git+https://" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_a_bare_target_must_be_an_existing_folder(app: Path, tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    result = run("sync", str(app), str(missing))
    assert result.returncode == 2 and f"dir:{missing}" in result.stderr
    assert not missing.exists()
    (tmp_path / "there").mkdir()
    assert run("sync", str(app), str(tmp_path / "there")).returncode == 0


def test_diff_mentions_extraneous_objects(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("sync", str(app), f"dir:{out}").returncode == 0
    (app / "service.yaml").unlink()
    result = run("diff", str(app), f"dir:{out}")
    assert result.returncode == 0
    assert "1 owned objects are no longer in the source (use --prune" in result.stdout


def test_the_inventory_name_is_derived_from_the_source(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run("sync", str(app), f"dir:{out}", "-o", "json")
    name = json.loads(first.stdout)["name"]
    assert "-app-" in name and name != "default"
    assert json.loads(run("diff", f"dir:{app}", f"dir:{out}", "-o", "json").stdout)[
        "name"] == name, "the same source, written differently, is the same app"


def test_ctrl_c_finishes_cleanly_and_exits_130(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    docs = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"},
             "data": {"k": "v"}} for i in range(200)]
    (src / "all.yaml").write_text(yaml.safe_dump_all(docs))
    proc = subprocess.Popen(
        [GITOPS or "gitops", "sync", str(src), "mock:?latency=0.02&methods=apply", "--no-diff"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("Source:")
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Sync interrupted" in stdout and "not applied (" in stdout
    assert "Traceback" not in stderr


def test_variables_from_flags_and_files_are_substituted(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: '${NS}'}\n"
        "data: {color: '${COLOR:=blue}', size: '${SIZE}'}\n")
    env = tmp_path / "vars.env"
    env.write_text("# a .env file\nNS=team-a\nSIZE=large\n")
    out = tmp_path / "out"
    synced = run("sync", str(src), f"dir:{out}", "--vars-file", str(env), "--var", "SIZE=small")
    assert synced.returncode == 0, synced.stderr
    stored = yaml.safe_load((out / "team-a" / "ConfigMap" / "app.yaml").read_text())
    assert stored["data"] == {"color": "blue", "size": "small"}
    missing = run("diff", str(src), f"dir:{out}", "--var", "NS=team-a")
    assert missing.returncode == 2 and "SIZE" in missing.stderr and "cm.yaml" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("- not\n- a mapping\n")
    refused = run("diff", str(src), f"dir:{out}", "--vars-file", str(bad))
    assert refused.returncode == 2 and "bad.yaml" in refused.stderr


def test_ignore_rules_and_explanations_from_the_command_line(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("sync", str(app), f"dir:{out}").returncode == 0
    live = out / "shop" / "Deployment.apps" / "shop.yaml"
    live.write_text(live.read_text().replace("replicas: 2", "replicas: 5"))  # an autoscaler
    rules = tmp_path / "ignore.yaml"
    rules.write_text("- group: apps\n  kind: Deployment\n  jsonPointers: [/spec/replicas]\n")
    plain = run("diff", str(app), f"dir:{out}")
    assert plain.returncode == 1, "without the rule, replicas is drift"
    ignoring = run("diff", str(app), f"dir:{out}", "--ignore-differences", str(rules),
                   "--explain")
    assert ignoring.returncode == 0, ignoring.stdout + ignoring.stderr
    assert "/spec/replicas" in ignoring.stdout and "rule 0" in ignoring.stdout
    data = json.loads(run("diff", str(app), f"dir:{out}", "--ignore-differences", str(rules),
                          "--explain", "-o", "json").stdout)
    fields = [f for item in data["explain"] for f in item["fields"]]
    assert any(f["path"] == "/spec/replicas" for f in fields)
    (app / "deployment.yaml").write_text(
        (app / "deployment.yaml").read_text().replace("image: ", "image: x", 1))
    synced = run("sync", str(app), f"dir:{out}", "--ignore-differences", str(rules))
    assert synced.returncode == 0, synced.stderr
    assert "replicas: 5" in live.read_text(), "the sync left the ignored field as it is live"
    bad = tmp_path / "bad-rules.yaml"
    bad.write_text("- kind: Deployment\n  jqPathExpressions: ['.spec | bogus(']\n")
    refused = run("diff", str(app), f"dir:{out}", "--ignore-differences", str(bad))
    assert refused.returncode == 2 and "bad-rules.yaml" in refused.stderr


def test_two_syncs_at_once_into_one_folder_never_lose_ownership(tmp_path: Path) -> None:
    """Issue 8: two `gitops sync` at once left half the objects in no inventory."""
    sources = []
    for team in ("a", "b"):
        src = tmp_path / f"src-{team}"
        src.mkdir()
        docs = [{"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": f"{team}-{i}", "namespace": "shared"}, "data": {"k": "v"}}
                for i in range(1500)]
        (src / "all.yaml").write_text(yaml.safe_dump_all(docs))
        sources.append(src)
    out = tmp_path / "out"
    procs = [subprocess.Popen([GITOPS or "gitops", "sync", str(src), f"dir:{out}?lock_timeout=0",
                               "--name", "same", "--no-diff", "-o", "json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for src in sources]
    finished = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert 0 in codes, finished
    for code, (_, stderr) in zip(codes, finished, strict=True):
        assert code == 0 or "another sync of" in stderr, stderr
    stored = {p.stem for p in (out / "shared" / "ConfigMap").glob("*.yaml")}
    inventory = json.loads(run("diff", str(sources[codes.index(0)]), f"dir:{out}",
                               "--name", "same", "-o", "json").stdout)
    assert inventory["in_sync"] is True
    owned = json.loads((out / ".gitops" / "inventory" / "same.json").read_text())
    listed = {e["name"] for e in owned["entries"]}
    assert stored <= listed, f"{len(stored - listed)} objects are in no inventory"


@pytest.mark.parametrize(
    "argv", [("sync", "src", "dir:out", "--bogus", "-o", "json"), ("diff", "--output=json")]
)
def test_a_refused_command_line_with_o_json_prints_one_json_object(argv: tuple[str, ...]) -> None:
    result = run(*argv)
    assert result.returncode == 2
    assert json.loads(result.stdout)["exit"] == 2
    assert "usage: gitops" in result.stderr


def test_a_refused_command_line_without_o_json_prints_only_usage() -> None:
    result = run("sync", "src", "dir:out", "--bogus")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("usage: gitops") and "unrecognized arguments" in result.stderr


def test_an_inventory_taken_over_by_another_source_is_a_visible_warning(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for team in ("a", "b"):
        src = tmp_path / team
        src.mkdir()
        (src / "cm.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {k: v}\n")
    assert run("sync", str(tmp_path / "a"), f"dir:{out}", "--name", "shared").returncode == 0
    taken = run("diff", str(tmp_path / "b"), f"dir:{out}", "--name", "shared")
    assert taken.returncode == 0
    assert taken.stderr.startswith("gitops: warning: inventory 'shared'")
    assert str(tmp_path / "a") in taken.stderr
