"""The worked third-party plugin in examples/plugins/ is installed and found like any other.

`make test` installs it into the venv (and sets GITOPS_REQUIRE_EXAMPLE_PLUGIN, so these
tests fail rather than skip if it is missing); its own suite runs from pytest's testpaths.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DISTRIBUTION = "gitops-plugin-example"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "plugins" / DISTRIBUTION


def _installed_version() -> str | None:
    """The version the ``gitops`` command sees: asked in a subprocess, because pytest's
    ``pythonpath`` (the plugin's src/, for its own suite) does not count as installed."""
    probe = subprocess.run(
        [sys.executable, "-c", f"from importlib import metadata; "
         f"print(metadata.version({DISTRIBUTION!r}))"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    return probe.stdout.strip() or None if probe.returncode == 0 else None


VERSION = _installed_version()

pytestmark = pytest.mark.skipif(
    VERSION is None and not os.environ.get("GITOPS_REQUIRE_EXAMPLE_PLUGIN"),
    reason=f"pip install -e {EXAMPLE.relative_to(EXAMPLE.parents[2])} (make test does)",
)


def gitops_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``gitops`` command (the console script beside this Python)."""
    script = Path(sys.executable).parent / "gitops"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "gitops.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, check=False)


def test_the_example_plugin_is_installed() -> None:
    assert VERSION is not None, f"{DISTRIBUTION} is not installed: make test installs it"


def test_gitops_plugins_lists_it_with_its_distribution() -> None:
    result = gitops_cli("plugins")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    found = {(row[0], row[1]): row for row in rows if len(row) >= 5}
    for kind, cls in (("target", "JsonlTarget"), ("renderer", "JsonlRenderer")):
        row = found.get((kind, "jsonl"))
        assert row is not None, f"`gitops plugins` does not list the {kind} jsonl:\n{result.stdout}"
        assert row[2].endswith(f":{cls}"), row
        assert row[3:6] == [DISTRIBUTION, str(VERSION), "ok"], row


def test_gitops_sync_writes_into_a_jsonl_target(tmp_path: Path) -> None:
    live = tmp_path / "live.jsonl"
    app = Path(__file__).resolve().parent.parent / "examples" / "app"
    first = gitops_cli("sync", str(app), f"jsonl:{live}?fsync=false", "--prune")
    assert first.returncode == 0, first.stderr
    assert live.exists() and "shop" in live.read_text()
    again = gitops_cli("diff", str(app), f"jsonl:{live}")
    assert again.returncode == 0, f"not in sync after a sync:\n{again.stdout}{again.stderr}"
