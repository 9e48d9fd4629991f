"""jq path expressions of ignore rules, evaluated with bounds (PyPI ``jq``).

Argo CD's ``jqPathExpressions`` select fields with jq (``.spec.template.spec
.initContainers[] | select(.name == "istio-init")``). jq is a full language: an
expression may loop forever or select millions of paths, and the ``jq`` package runs
it in C where no Python timeout reaches. So expressions are *compiled* here, once, to
report a bad one at once (:func:`check_expression`), and *evaluated* in one worker
process (:mod:`gitops.differs._jq_worker`) that is killed when a request outlives
``timeout`` (Argo CD's default: one second). Documents larger than ``max_bytes`` and
expressions selecting more than ``max_paths`` paths are refused. A runtime error on
one document ("Cannot iterate over null": the document lacks the field) selects
nothing there, as in Argo CD.

This module never evaluates jq in the calling process, and never logs documents.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Final

from gitops.errors import InputError

__all__ = ["JqRunner", "check_expression", "runner"]

MAX_EXPRESSION: Final = 4096  # characters
_WORKER: Final = Path(__file__).with_name("_jq_worker.py")


@functools.lru_cache(maxsize=512)
def check_expression(expression: str) -> str | None:
    """Why ``expression`` is not a usable jq path expression, or None when it is.

    Compiles ``path(EXPRESSION)`` with the ``jq`` package (cached: each expression is
    compiled once per process).
    """
    if not expression.strip():
        return "empty jq expression"
    if len(expression) > MAX_EXPRESSION:
        return f"jq expression longer than {MAX_EXPRESSION} characters"
    try:
        import jq
    except ImportError:  # pragma: no cover - a declared dependency
        return "jqPathExpressions need the 'jq' package (pip install jq)"
    try:
        jq.compile(f"path({expression})")
    except ValueError as exc:
        return " ".join(str(exc).split())
    return None


class JqRunner:
    """Evaluates path expressions in a worker process with a time and size budget.

    Thread-safe (one request at a time); the worker starts on first use and is killed
    when a request times out (the next request starts a new one) and at exit.
    """

    def __init__(
        self,
        *,
        timeout: float = 1.0,
        max_paths: int = 10_000,
        max_bytes: int = 8 << 20,
        startup_timeout: float = 30.0,
    ) -> None:
        self.timeout = timeout
        self.startup_timeout = startup_timeout
        self.max_paths = max_paths
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        atexit.register(self.close)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(timeout={self.timeout}, max_paths={self.max_paths})"

    def paths(
        self, expressions: tuple[str, ...], documents: tuple[Any, ...], rule: str
    ) -> list[list[list[tuple[str | int, ...]]]]:
        """For each expression, for each document, the paths it selects (as tokens).

        ``rule`` names the rule in errors (``ignoreDifferences[2]``). Raises InputError
        for a bad expression, one that outlives the timeout or selects too much, and a
        document too large to evaluate.
        """
        for expression in expressions:
            problem = check_expression(expression)
            if problem is not None:
                raise InputError(f"{rule}: jqPathExpressions {expression!r}: {problem}")
        texts = [json.dumps(doc, default=str) for doc in documents]
        for text in texts:
            if len(text) > self.max_bytes:
                raise InputError(
                    f"{rule}: an object of {len(text)} bytes is too large for jq "
                    f"(at most {self.max_bytes})"
                )
        request = {"exprs": list(expressions), "docs": texts, "limit": self.max_paths}
        results = self._ask(json.dumps(request).encode() + b"\n", rule)
        out: list[list[list[tuple[str | int, ...]]]] = []
        for expression, per_doc in zip(expressions, results, strict=True):
            row: list[list[tuple[str | int, ...]]] = []
            for found in per_doc:
                if isinstance(found, dict):
                    message = str(found.get("error", ""))
                    if "Invalid path expression" in message or "selects more than" in message:
                        raise InputError(f"{rule}: jqPathExpressions {expression!r}: {message}")
                    row.append([])  # e.g. "Cannot iterate over null": selects nothing here
                    continue
                row.append([tuple(p) for p in found if _is_path(p)])
            out.append(row)
        return out

    def _ask(self, request: bytes, rule: str) -> Any:
        with self._lock:
            try:
                process = self._start()
            except (OSError, TimeoutError) as exc:
                self._kill()
                raise InputError(f"{rule}: the jq worker did not start: {exc!r}") from exc
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(request)
                process.stdin.flush()
                line = self._read_line(process.stdout.fileno(), time.monotonic() + self.timeout)
            except (OSError, TimeoutError) as exc:
                self._kill()
                if isinstance(exc, TimeoutError):
                    raise InputError(
                        f"{rule}: jqPathExpressions did not finish within {self.timeout:g} s"
                    ) from None
                raise InputError(f"{rule}: the jq worker failed: {exc}") from exc
            return json.loads(line)["results"]

    def _start(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._buffer = b""
            self._process = subprocess.Popen(  # our own script, no shell
                [sys.executable, "-P", str(_WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            )
            assert self._process.stdout is not None
            # a busy machine may take seconds to start Python: not the expression's time
            ready = self._read_line(self._process.stdout.fileno(),
                                    time.monotonic() + self.startup_timeout)
            if json.loads(ready) != {"ready": True}:
                raise OSError("the jq worker did not say it was ready")
        return self._process

    def _read_line(self, fd: int, deadline: float) -> bytes:
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise OSError("the jq worker exited")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _kill(self) -> None:
        process, self._process = self._process, None
        self._buffer = b""
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()

    def close(self) -> None:
        """Stop the worker (it restarts on the next request)."""
        with self._lock:
            self._kill()


def _is_path(value: Any) -> bool:
    return isinstance(value, list) and all(
        type(t) is str or (type(t) is int and t >= 0) for t in value
    )


_RUNNER: JqRunner | None = None
_RUNNER_LOCK = threading.Lock()


def runner() -> JqRunner:
    """The process-wide runner (one worker process for every diff)."""
    global _RUNNER
    with _RUNNER_LOCK:
        if _RUNNER is None:
            _RUNNER = JqRunner()
        return _RUNNER
