"""The `gitops` console script, run as a real subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "app"
GITOPS = shutil.which("gitops", path=str(Path(sys.executable).parent))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert GITOPS is not None, "the gitops console script is not installed in this venv"
    return subprocess.run([GITOPS, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def app(tmp_path: Path) -> Path:
    dest = tmp_path / "app"
    shutil.copytree(EXAMPLE, dest)
    return dest


def test_diff_sync_diff_roundtrip(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = run("diff", str(app), f"dir:{out}")
    assert before.returncode == 1, before.stderr
    assert "create  Deployment.apps" in before.stdout
    assert "Plan: 7 to create, 0 to update, 0 to delete, 0 unchanged." in before.stdout

    synced = run("sync", str(app), f"dir:{out}", "--prune")
    assert synced.returncode == 0, synced.stderr
    assert "Sync succeeded" in synced.stdout and "7 of 7 changes applied" in synced.stdout

    after = run("diff", f"dir:{app}", f"dir:{out}")
    assert after.returncode == 0, after.stderr
    assert "In sync: 7 resources unchanged." in after.stdout


def test_json_output_follows_the_contract(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    synced = run("sync", str(app), f"dir:{out}", "-o", "json")
    assert synced.returncode == 0, synced.stderr
    data = json.loads(synced.stdout)
    assert data["revision"].startswith("sha256:") and len(data["revision"]) == 71
    assert data["in_sync"] is True
    first = data["changes"][0]
    assert {k: first[k] for k in ("action", "apiVersion", "kind", "namespace", "name")} == {
        "action": "create", "apiVersion": "v1", "kind": "Namespace", "namespace": "",
        "name": "shop"}
    assert {c["outcome"] for c in data["changes"]} == {"succeeded"}

    (app / "service.yaml").unlink()
    diff = run("diff", str(app), f"dir:{out}", "--prune", "-o", "json")
    assert diff.returncode == 1
    plan = json.loads(diff.stdout)
    assert plan["in_sync"] is False
    assert [(c["action"], c["kind"], c["name"]) for c in plan["changes"]] == [
        ("delete", "Service", "shop")]


def test_drift_is_shown_with_secrets_masked(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("sync", str(app), f"dir:{out}").returncode == 0
    secret = app / "secret.yaml"
    secret.write_text(secret.read_text().replace("change-me", "s3cr3t-value"))
    diff = run("diff", str(app), f"dir:{out}")
    assert diff.returncode == 1
    assert "update  Secret" in diff.stdout
    assert "s3cr3t" not in diff.stdout and "change-me" not in diff.stdout
    assert "DATABASE_URL" in diff.stdout


def test_dry_run_writes_nothing(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("sync", str(app), f"dir:{out}", "--dry-run", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["dry_run"] is True
    assert not out.exists(), "a dry run creates nothing, not even the target folder"


def test_invalid_manifest_is_one_line_naming_the_file(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("sync", str(app), f"dir:{out}").returncode == 0
    before = snapshot(out)
    (app / "broken.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {}\n")
    result = run("sync", str(app), f"dir:{out}", "--prune")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.yaml" in lines[0] and "Traceback" not in result.stderr
    assert snapshot(out) == before


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    result = run("-v", "diff", str(tmp_path / "missing"), f"dir:{tmp_path / 'out'}")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "missing" in result.stderr


def test_unknown_scheme_lists_installed_plugins(tmp_path: Path) -> None:
    result = run("diff", "nosuch://x", f"dir:{tmp_path}")
    assert result.returncode == 2
    assert "no source plugin for 'nosuch'" in result.stderr and "dir" in result.stderr


def test_empty_source_with_prune_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run("sync", str(tmp_path / "empty"), f"dir:{tmp_path / 'out'}", "--prune")
    assert result.returncode == 2 and "--allow-empty" in result.stderr
    ok = run("sync", str(tmp_path / "empty"), f"dir:{tmp_path / 'out'}", "--prune",
             "--allow-empty")
    assert ok.returncode == 0, ok.stderr


def test_plugins_lists_the_builtins() -> None:
    result = run("plugins", "-o", "json")
    assert result.returncode == 0, result.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)["plugins"]}
    for key in [("source", "dir"), ("target", "dir"), ("target", "mock"),
                ("differ", "structural"), ("renderer", "yaml")]:
        assert rows[key]["status"] == "ok" and rows[key]["from"].startswith("gitops-sdk")
    text = run("plugins")
    assert text.returncode == 0 and "gitops.targets.filetree:FileTreeTarget" in text.stdout
