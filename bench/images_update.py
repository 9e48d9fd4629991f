"""Benchmark: an image update commit and push against ``git commit -a`` plus ``git push``.

A repository of 1,000 YAML files (Deployments; ``--marked`` of them carry a setter
marker ``{"$imagepolicy": "default:web"}``) is served twice, identically, by one
``git daemon`` with receive-pack enabled on loopback. Each round a new tag is chosen:

- ours: :func:`gitops.images.gitpush.update_repository` with a kept working directory
  (the automation's steady state: one ref listing, every ``*.yaml`` read for markers,
  the marked fields rewritten, a dulwich commit, a push);
- git's: in an up-to-date ``git clone`` of the other copy, the same files rewritten
  to the same text, then ``git commit -a`` and ``git push``.

Each figure is the median of ``--rounds`` rounds (best beside it); the budget is
ours <= 2.0x git's. The first update (a fresh clone into the working directory) is
shown too, for information. Exit status: 0 within budget, 1 over it.

Reproduce: ``.venv/bin/python bench/images_update.py [--files 1000] [--marked 10]
[--rounds 7]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gitops.images.gitpush import update_repository
from gitops.images.latest import LatestImage
from gitops.images.spec import ImageUpdateAutomation
from gitops.testing.gitserver import GitDaemon, WorkRepo, git_env

BUDGET_RATIO = 2.0
IMAGE = "ghcr.io/acme/web"
MARKER = json.dumps({"$imagepolicy": "default:web"})


def deployment(index: int, tag: str, marked: bool) -> str:
    comment = f" # {MARKER}" if marked else ""
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{index}\n"
        f"  namespace: shop\nspec:\n  replicas: 2\n  template:\n    spec:\n"
        f"      containers:\n      - name: app\n"
        f"        image: {IMAGE if marked else 'ghcr.io/acme/other'}:{tag}{comment}\n"
        f"        ports:\n        - containerPort: 8080\n"
    )


def files(count: int, marked: int, tag: str) -> dict[str, str]:
    return {f"apps/team-{i % 20:02d}/app-{i:04d}.yaml": deployment(i, tag, i < marked)
            for i in range(count)}


def automation(url: str) -> ImageUpdateAutomation:
    return ImageUpdateAutomation.model_validate({
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {"git": {"url": url, "checkout": {"ref": {"branch": "main"}},
                         "commit": {"author": {"name": "Bench", "email": "bench@example.com"}}}},
    })


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--marked", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-images-update-") as tmp:
        root = Path(tmp)
        served, home = root / "served", root / "home"
        served.mkdir()
        home.mkdir()
        env = git_env(home)
        source = WorkRepo(root / "source", home=home)
        source.write(files(options.files, options.marked, "1.0.0"))
        source.commit("initial")
        for name in ("ours.git", "git.git"):
            source.push(served / name)

        with GitDaemon(served, receive_pack=True).start() as daemon:
            clone = root / "clone"
            subprocess.run(["git", "clone", "-q", f"git://127.0.0.1:{daemon.port}/git.git",
                            os.fspath(clone)], check=True, env=env)
            for key, value in (("user.name", "Bench"), ("user.email", "bench@example.com"),
                               ("commit.gpgsign", "false")):
                subprocess.run(["git", "-C", os.fspath(clone), "config", key, value], check=True,
                               env=env)
            spec = automation(daemon.url("ours.git"))
            workdir = root / "workdir"

            def ours(tag: str) -> float:
                choice = {"default:web": LatestImage("default:web", IMAGE, tag)}
                start = time.perf_counter()
                result = update_repository(spec, choice, workdir=workdir)
                elapsed = time.perf_counter() - start
                assert result.pushed and len(result.changes) == options.marked, result
                return elapsed

            def git(tag: str) -> float:
                start = time.perf_counter()
                for i in range(options.marked):
                    relpath = f"apps/team-{i % 20:02d}/app-{i:04d}.yaml"
                    (clone / relpath).write_text(deployment(i, tag, True))
                subprocess.run(["git", "-C", os.fspath(clone), "commit", "-q", "-a", "-m",
                                f"Update images to {tag}"], check=True, env=env)
                subprocess.run(["git", "-C", os.fspath(clone), "push", "-q", "origin", "main"],
                               check=True, env=env, capture_output=True)
                return time.perf_counter() - start

            first = ours("1.1.0")
            git("1.1.0")
            mine, theirs = [], []
            for index in range(options.rounds):
                tag = f"2.{index}.0"
                if index % 2:  # take turns at going first
                    theirs.append(git(tag))
                    mine.append(ours(tag))
                else:
                    mine.append(ours(tag))
                    theirs.append(git(tag))
            ours_head = subprocess.run(["git", "-C", os.fspath(served / "ours.git"), "show",
                                        "main:apps/team-00/app-0000.yaml"], check=True,
                                       env=env, capture_output=True, text=True).stdout
            assert ours_head == deployment(0, f"2.{options.rounds - 1}.0", True), ours_head

    ratio = statistics.median(mine) / statistics.median(theirs)
    print(f"repository: {options.files} files, {options.marked} marked; "
          f"{options.rounds} rounds (median, best)")
    print(f"first update (fresh clone into the working dir): {first * 1000:8.1f} ms")
    print(f"gitops update_repository (commit + push):  {statistics.median(mine) * 1000:8.1f} ms"
          f"  (best {min(mine) * 1000:.1f} ms)")
    print(f"git commit -a + git push:                  {statistics.median(theirs) * 1000:8.1f} ms"
          f"  (best {min(theirs) * 1000:.1f} ms)")
    print(f"ratio: {ratio:.2f}x (budget {BUDGET_RATIO:.1f}x)")
    if ratio > BUDGET_RATIO:
        print("OVER BUDGET", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
