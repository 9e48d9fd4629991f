"""Benchmark: the kustomize renderer on a 1,000-object overlay against ``kubectl kustomize``.

A base of 500 Deployment + Service pairs (one file each) and an overlay that uses
``../../base`` with a namespace, a name prefix, labels, an image override and a
strategic-merge patch are generated in a temporary folder. Each round times
``kubectl kustomize`` (or ``kustomize build``) on the overlay, printing to a pipe, and a
cold render by a fresh :class:`~gitops.renderers.kustomize.KustomizeRenderer` (tree
checks, the same kustomize run, parsing and validating the 1,000 objects). The budget:
our render within 1.2x of the tool alone (medians); a warm render (unchanged tree, served
from the content cache) is printed too. Exits 1 when over budget, 2 without kustomize.

Reproduce: ``.venv/bin/python bench/kustomize_render.py [--pairs 500] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gitops.model import RenderContext
from gitops.renderers.kustomize import KustomizeRenderer, kustomize_command

BUDGET = 1.2

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}, tier: backend}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: main
        image: registry.example.com/{name}:1.0.0
        ports: [{{containerPort: 8080, name: http}}]
        env: [{{name: LOG_LEVEL, value: info}}, {{name: SERVICE, value: {name}}}]
        resources: {{requests: {{cpu: 100m, memory: 64Mi}}, limits: {{memory: 128Mi}}}}
        readinessProbe: {{httpGet: {{path: /healthz, port: http}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: http}}]
"""


def generate(root: Path, pairs: int) -> Path:
    """Write base/ and overlays/prod/ under ``root``; return the overlay folder."""
    base = root / "base"
    base.mkdir(parents=True)
    names = [f"svc-{i:04d}" for i in range(pairs)]
    for name in names:
        (base / f"{name}.yaml").write_text(DEPLOYMENT.format(name=name))
    (base / "kustomization.yaml").write_text(
        "resources:\n" + "".join(f"- {name}.yaml\n" for name in names))
    overlay = root / "overlays" / "prod"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(
        "resources: [../../base]\n"
        "namespace: prod\nnamePrefix: prod-\n"
        "labels:\n- pairs: {env: prod}\n"
        "images:\n" + "".join(
            f"- name: registry.example.com/{name}\n  newTag: 1.1.0\n" for name in names[:50])
        + "patches:\n- path: replicas.yaml\n  target: {kind: Deployment}\n")
    (overlay / "replicas.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: any}\nspec: {replicas: 3}\n")
    return overlay


def time_tool(command: list[str], overlay: Path) -> float:
    started = time.perf_counter()
    subprocess.run([*command, str(overlay)], check=True, stdout=subprocess.PIPE,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def time_render(overlay: Path, tree: Path) -> tuple[float, float, int]:
    """(cold seconds, warm seconds, objects) for a fresh renderer."""
    renderer = KustomizeRenderer()
    context = RenderContext(tree=tree)
    started = time.perf_counter()
    resources = renderer.render(overlay, context)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    renderer.render(overlay, context)
    warm = time.perf_counter() - started
    return cold, warm, len(resources)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=500, help="Deployment+Service pairs")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ok, why = KustomizeRenderer.viable()
    command = kustomize_command()
    if not ok or command is None:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gitops-bench-kustomize-") as scratch:
        tree = Path(scratch)
        overlay = generate(tree, args.pairs)
        time_tool(command, overlay)  # warm the page cache and the binary
        tool, ours, warm = [], [], []
        objects = 0
        for _ in range(args.rounds):  # interleaved, so load on the machine hits both alike
            tool.append(time_tool(command, overlay))
            cold, hot, objects = time_render(overlay, tree)
            ours.append(cold)
            warm.append(hot)
    tool_s, ours_s, warm_s = (statistics.median(x) for x in (tool, ours, warm))
    ratio = ours_s / tool_s
    print(f"overlay of {objects} objects ({args.pairs} Deployment+Service pairs), "
          f"median of {args.rounds} rounds")
    print(f"  {' '.join(command)} DIR      {tool_s:8.3f} s")
    print(f"  gitops kustomize render (cold)  {ours_s:8.3f} s   {ratio:.2f}x (budget {BUDGET}x)")
    print(f"  gitops kustomize render (warm)  {warm_s:8.3f} s   (unchanged tree: cached)")
    if ratio > BUDGET:
        print(f"OVER BUDGET: {ratio:.2f}x > {BUDGET}x", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
