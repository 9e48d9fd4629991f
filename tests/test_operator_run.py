"""``gitops run`` end to end, as a real process: a Git source on a real ``git daemon``,
``dir:`` targets, a signed GitHub push webhook, ``/metrics`` scraped over HTTP,
notifications received by a loopback sink, drift healed or only reported depending on
``selfHeal``, and a graceful stop on SIGTERM.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_support import wait_for
from prometheus_client.parser import text_string_to_metric_families

from gitops.operator.commands import FileCatalog, find_application
from gitops.operator.status import AppStatus
from gitops.testing.gitserver import GitDaemon, WorkRepo, free_port

SECRET = b"s3cret-webhook-key"
CM = """apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: default}}
data: {{value: "{value}"}}
"""


class Sink:
    """A loopback HTTP server recording the JSON bodies posted to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reasons(self, app: str) -> list[str]:
        return [n["reason"] for n in self.received if n["app"] == app]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Setup:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        served = tmp / "served"
        served.mkdir()
        self.bare = served / "config.git"
        self.work = WorkRepo(tmp / "work", home=tmp / "home")
        self.work.write({"apps/a/cm.yaml": CM.format(name="a", value="1"),
                         "apps/b/cm.yaml": CM.format(name="b", value="1")})
        self.work.commit("first")
        self.work.push(self.bare)
        self.daemon = GitDaemon(served).start()
        url = self.daemon.url("config.git")
        self.out_a, self.out_b = tmp / "out-a", tmp / "out-b"
        docs = [
            {"apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
             "metadata": {"name": "a", "namespace": "team"},
             "spec": {"source": {"url": f"{url}@main#path=apps/a"},
                      "target": {"url": f"dir:{self.out_a}"}, "interval": "1s"}},
            {"apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
             "metadata": {"name": "b", "namespace": "team"},
             "spec": {"source": {"url": f"{url}@main#path=apps/b"},
                      "target": {"url": f"dir:{self.out_b}"}, "interval": "1h",
                      "selfHeal": False}},
        ]
        self.apps = tmp / "apps.yaml"
        self.apps.write_text(yaml.safe_dump_all(docs))
        (tmp / "secret").write_bytes(SECRET + b"\n")
        self.metrics_port, self.webhook_port = free_port(), free_port()

    def value(self, out: Path, name: str) -> str | None:
        """``data.value`` of the ConfigMap in ``out`` (None while absent)."""
        path = out / "default" / "ConfigMap" / f"{name}.yaml"
        try:
            return str(yaml.safe_load(path.read_text())["data"]["value"])
        except (OSError, TypeError, KeyError):
            return None

    def status(self, name: str) -> AppStatus | None:
        catalog = FileCatalog([self.apps])
        try:
            return catalog.store.read(find_application(catalog, name))
        finally:
            catalog.close()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{self.webhook_port}{path}",
                                         data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def github_push(self, *, signature: str | None = None) -> int:
        body = json.dumps({
            "ref": "refs/heads/main", "before": "0" * 40, "after": self.work.head(),
            "repository": {"full_name": "team/config",
                           "git_url": f"git://127.0.0.1:{self.daemon.port}/config.git",
                           "clone_url": f"http://127.0.0.1:{self.daemon.port}/config.git"},
        }).encode()
        digest = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        return self.post("/hooks/git", body, {
            "Content-Type": "application/json", "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "1", "X-Hub-Signature-256": signature or f"sha256={digest}",
        })

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=5) as response:
            text = response.read().decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}


_SEEN: dict[int, bytearray] = {}


def _stderr_so_far(process: subprocess.Popen[bytes]) -> bytes:
    """What the process wrote to stderr so far (read without blocking)."""
    import fcntl

    assert process.stderr is not None
    fd = process.stderr.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    buffer = _SEEN.setdefault(process.pid, bytearray())
    try:
        while chunk := os.read(fd, 65536):
            buffer.extend(chunk)
    except BlockingIOError:
        pass
    return bytes(buffer)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    made = Setup(tmp_path)
    yield made
    made.daemon.stop()


def test_gitops_run_end_to_end(setup: Setup, tmp_path: Path) -> None:
    sink = Sink()
    env = {**os.environ, "GITOPS_CACHE_DIR": os.fspath(tmp_path / "cache")}
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from gitops.cli import main; sys.exit(main())",
         "run", "-f", os.fspath(setup.apps), "--reload-interval", "0.2",
         "--metrics-addr", f"127.0.0.1:{setup.metrics_port}",
         "--webhook-addr", f"127.0.0.1:{setup.webhook_port}",
         "--webhook-secret-file", os.fspath(tmp_path / "secret"),
         "--notify", sink.url, "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        # every application is reconciled once at start
        wait_for(lambda: setup.value(setup.out_a, "a") == "1"
                   and setup.value(setup.out_b, "b") == "1", 30, "the first syncs")
        wait_for(lambda: set(sink.reasons("team/a")) >= {"SyncSucceeded"}
                   and "SyncSucceeded" in sink.reasons("team/b"), 10, "notifications")
        note = next(n for n in sink.received if n["app"] == "team/a")
        assert set(note) >= {"app", "reason", "revision", "message", "time", "text"}
        assert note["revision"].startswith("main@sha1:")

        # selfHeal on: drift is put back by the next interval
        path_a = setup.out_a / "default" / "ConfigMap" / "a.yaml"
        path_a.write_text(CM.format(name="a", value="tampered"))
        wait_for(lambda: setup.value(setup.out_a, "a") != "tampered", 10, "self-heal")

        # selfHeal off: drift found by a reconcile (asked through the app webhook) is only
        # reported
        path_b = setup.out_b / "default" / "ConfigMap" / "b.yaml"
        path_b.write_text(CM.format(name="b", value="tampered"))
        assert setup.post("/hooks/apps/team/b", b"", {"Authorization": "Bearer wrong"}) == 401
        assert setup.post("/hooks/apps/team/b", b"",
                          {"Authorization": f"Bearer {SECRET.decode()}"}) == 202
        wait_for(lambda: "DriftDetected" in sink.reasons("team/b"), 10, "drift report")
        assert setup.value(setup.out_b, "b") == "tampered"
        wait_for(lambda: (s := setup.status("team/b")) is not None and s.sync == "OutOfSync",
                 5, "OutOfSync in the status")

        metrics = setup.scrape()
        assert metrics[("gitops_reconcile_total", (("app", "team/a"), ("result", "success")))] >= 2
        assert metrics[("gitops_app_out_of_sync", (("app", "team/b"),))] == 1
        assert metrics[("gitops_app_out_of_sync", (("app", "team/a"),))] == 0
        assert metrics[("gitops_resources", (("app", "team/a"),))] == 1
        assert ("gitops_source_fetch_duration_seconds_count", ()) in metrics

        # a push, announced by a signed webhook, is applied at once (interval is an hour)
        setup.work.write({"apps/b/cm.yaml": CM.format(name="b", value="2")})
        setup.work.commit("second")
        setup.work.push(setup.bare)
        assert setup.github_push(signature="sha256=" + "0" * 64) == 401  # forged: no action
        time.sleep(0.5)
        assert setup.value(setup.out_b, "b") != "2"
        assert setup.github_push() == 202
        # within seconds, though the interval is an hour: the webhook drove it
        wait_for(lambda: setup.value(setup.out_b, "b") == "2", 5, "the pushed commit")

        def webhook_recorded() -> bool:  # the status is written after the objects
            status = setup.status("team/b")
            return status is not None and bool(status.history) \
                and status.history[-1].trigger == "webhook"

        wait_for(webhook_recorded, 5, "the webhook sync in the history")

        # the files are reloaded: a broken edit is reported and the last good set keeps
        # running; a new application starts at once
        good = setup.apps.read_text()
        setup.apps.write_text(good + "---\nkind: Application\nspec: {}\n")
        wait_for(lambda: b"not reloaded" in _stderr_so_far(process), 10, "a reload error")
        third = {"apiVersion": "gitops.dev/v1alpha1", "kind": "Application",
                 "metadata": {"name": "c", "namespace": "team"},
                 "spec": {"source": {"url": yaml.safe_load_all(good).__next__()["spec"][
                     "source"]["url"]}, "target": {"url": f"dir:{tmp_path / 'out-c'}"}}}
        setup.apps.write_text(good + "---\n" + yaml.safe_dump(third))
        wait_for(lambda: setup.value(tmp_path / "out-c", "a") == "1", 10, "the new app")

        # readiness and liveness
        for path in ("/healthz", "/readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{setup.metrics_port}{path}",
                                        timeout=5) as response:
                assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, rest = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        stderr = bytes(_SEEN.pop(process.pid, bytearray())) + rest
        sink.close()
    assert process.returncode == 0, stderr.decode()[-2000:]
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    assert any(line.get("app") == "team/b" and line.get("reason") == "DriftDetected"
               for line in lines)
    assert SECRET.decode() not in stderr.decode()


def test_gitops_run_once_and_the_app_commands(setup: Setup, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from gitops.cli import main

    monkeypatch.setenv("GITOPS_CACHE_DIR", os.fspath(tmp_path / "cache"))
    files = ["-f", os.fspath(setup.apps)]
    assert main(["status", *files]) == 1  # nothing reconciled yet
    assert main(["run", *files, "--once", "--metrics-addr", "off"]) == 0
    capsys.readouterr()
    assert main(["status", *files, "-o", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["applications"]
    assert [(a["namespace"], a["name"], a["sync"], a["health"]) for a in listed] == [
        ("team", "a", "Synced", "Healthy"), ("team", "b", "Synced", "Healthy")]
    first = listed[1]["revision"]

    setup.work.write({"apps/b/cm.yaml": CM.format(name="b", value="2")})
    setup.work.commit("second")
    setup.work.push(setup.bare)
    assert main(["sync", "b", *files]) == 0
    assert setup.value(setup.out_b, "b") == "2"
    capsys.readouterr()
    assert main(["history", "team/b", *files, "-o", "json"]) == 0
    history = json.loads(capsys.readouterr().out)["history"]
    assert [h["trigger"] for h in history] == ["start", "manual"]

    # b has selfHeal off: rollback needs no --force; a has it on: refused without it
    assert main(["rollback", "a", first, *files]) == 2
    assert "selfHeal is on" in capsys.readouterr().err
    short = first.rpartition(":")[2][:10]
    assert main(["rollback", "b", short, *files]) == 0
    assert setup.value(setup.out_b, "b") == "1"
    assert "automation suspended" in capsys.readouterr().out
    assert main(["status", *files, "-o", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["applications"]
    assert listed[1]["suspended"] is True
    # suspended: `gitops run --once` leaves it at the rolled-back revision
    assert main(["run", *files, "--once", "--metrics-addr", "off"]) == 1
    assert setup.value(setup.out_b, "b") == "1"
    assert main(["resume", "b", *files]) == 0
    assert main(["run", *files, "--once", "--metrics-addr", "off"]) == 0
    assert setup.value(setup.out_b, "b") == "2"
    assert main(["suspend", "team/b", *files, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {
        "application": "team/b", "suspended": True}
