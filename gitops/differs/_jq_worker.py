"""The jq worker process: evaluates ``path(EXPR)`` for :mod:`gitops.differs.jqpaths`.

Run as a script (``python _jq_worker.py``); it needs only the ``jq`` package. Says
``{"ready": true}`` once started, then reads one
JSON request a line on stdin, ``{"exprs": [...], "docs": [JSON text, ...], "limit": N}``,
and writes one JSON line back: for each expression, for each document, the list of
paths or ``{"error": message}``. Compiled programs are kept for the process's life.
It is killed by its parent when a request takes too long; it never writes elsewhere.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> None:
    import jq  # imported here: the parent checks the import before starting us

    programs: dict[str, Any] = {}
    sys.stdout.write('{"ready": true}\n')  # started: requests are timed from here on
    sys.stdout.flush()
    for line in sys.stdin:
        request = json.loads(line)
        limit = int(request["limit"])
        results: list[Any] = []
        for expr in request["exprs"]:
            program = programs.get(expr)
            if program is None:
                try:
                    program = programs[expr] = jq.compile(f"path({expr})")
                except ValueError as exc:
                    results.append([{"error": str(exc)} for _ in request["docs"]])
                    continue
            per_doc: list[Any] = []
            for text in request["docs"]:
                paths: list[Any] = []
                try:
                    for path in program.input_text(text):
                        paths.append(path)
                        if len(paths) > limit:
                            raise ValueError(f"selects more than {limit} paths")
                except ValueError as exc:
                    per_doc.append({"error": str(exc)})
                    continue
                per_doc.append(paths)
            results.append(per_doc)
        sys.stdout.write(json.dumps({"results": results}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
