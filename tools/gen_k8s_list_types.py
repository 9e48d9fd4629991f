"""Generate gitops/differs/data/k8s-1.32-list-types.json from Kubernetes' OpenAPI v3 documents.

The input is a folder of the documents a real API server serves at
``/openapi/v3/<group-version>``, as published in kubernetes/kubernetes under
``api/openapi-spec/v3/`` (``api__v1_openapi.json``, ``apis__apps__v1_openapi.json``...;
the ``api/v1.json``, ``apis/apps/v1.json`` layout is read too). Each document is reduced
with :func:`gitops.differs.lists.reduce_openapi` (the same code the Kubernetes target
runs on documents it fetches); for each kind the best version (GA over beta over alpha,
the highest first) is kept. Provenance goes into the output's ``source`` field.

Usage::

    python tools/gen_k8s_list_types.py DIR --repo kubernetes/kubernetes \\
        --ref release-1.32 --commit <sha> --path api/openapi-spec/v3 [--via REPO@SHA:PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gitops.differs.lists import Reduced, reduce_openapi, version_priority

OUTPUT = Path(__file__).resolve().parent.parent / "gitops/differs/data/k8s-1.32-list-types.json"


def documents(folder: Path) -> list[Path]:
    found = sorted(folder.glob("api*__*_openapi.json"))
    found += sorted(p for p in folder.rglob("*.json") if p.parts[len(folder.parts)] in ("api", "apis"))
    return found


def generate(folder: Path) -> tuple[dict[str, str], dict[str, Reduced]]:
    best: dict[tuple[str, str], tuple[str, str]] = {}  # (group, kind) -> (version, type)
    types: dict[str, Reduced] = {}
    for path in documents(folder):
        kinds, reduced = reduce_openapi(json.loads(path.read_text("utf-8")))
        for name, node in reduced.items():
            if types.setdefault(name, node) != node:
                raise SystemExit(f"{path}: type {name} differs between documents")
        for (group, version, kind), name in kinds.items():
            known = best.get((group, kind))
            if known is None or version_priority(version) < version_priority(known[0]):
                best[(group, kind)] = (version, name)
    roots = {f"{group}/{kind}": name for (group, kind), (_v, name) in sorted(best.items())}
    needed: set[str] = set()
    pending = list(roots.values())
    while pending:
        name = pending.pop()
        if name not in needed:
            needed.add(name)
            pending.extend(_names(types[name]))
    return roots, {name: types[name] for name in sorted(needed)}


def _names(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    out: list[str] = []
    for _spec, child in (node or {}).values():
        out.extend(_names(child))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--repo", default="kubernetes/kubernetes")
    parser.add_argument("--ref", required=True)
    parser.add_argument("--commit", default="")
    parser.add_argument("--path", default="api/openapi-spec/v3")
    parser.add_argument("--via", default="", help="where the copy read came from, if not the repo")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    roots, types = generate(args.folder)
    source = {"repo": args.repo, "ref": args.ref, "commit": args.commit, "path": args.path,
              "via": args.via, "generator": "tools/gen_k8s_list_types.py"}
    data = {"source": source, "kinds": roots, "types": types}
    text = json.dumps(data, separators=(",", ":"), sort_keys=False)
    # one type per line: small diffs when regenerated
    text = text.replace(',"io.', ',\n"io.').replace(',"com.', ',\n"com.')
    args.output.write_text(text + "\n", "utf-8")
    print(f"{len(roots)} kinds, {len(types)} types -> {args.output} ({len(text)} bytes)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
