"""Real registries for the OCI tests, started once per session on loopback.

Four distribution registries (anonymous, htpasswd basic auth, bearer tokens from a
loopback token service, TLS with a CA made here) start lazily, the first time a test
asks for one, and stop at the end of the session. A missing ``docker-registry`` or
``skopeo`` skips the tests that need it, except under ``CI=true``, where it fails them:
CI must run everything (``.ci/run`` installs both).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ocitools import require

from gitops.testing.registry import LocalRegistry, registry_binary


def _start(tmp_path_factory: pytest.TempPathFactory, name: str, **kwargs: object) -> LocalRegistry:
    binary = require(registry_binary(), "docker-registry")
    return LocalRegistry(tmp_path_factory.mktemp(name), binary=binary, **kwargs).start()  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def anon_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    registry = _start(tmp_path_factory, "registry-anon")
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    registry = _start(tmp_path_factory, "registry-basic", auth="htpasswd",
                      password="s3cr3t/P@ss:wörd#1")
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    registry = _start(tmp_path_factory, "registry-token", auth="token",
                      password="t0ken-Secret-42")
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    registry = _start(tmp_path_factory, "registry-tls", tls=True)
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def skopeo() -> str:
    return require(shutil.which("skopeo"), "skopeo")


@pytest.fixture
def repo() -> str:
    """A fresh repository name, so tests never see each other's tags."""
    return f"test/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
