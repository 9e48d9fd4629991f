"""The Source contract as a pytest mixin: subclass :class:`SourceConformance`, add fixtures.

::

    class TestMySource(SourceConformance):
        @pytest.fixture
        def make_source(self, tmp_path):
            def make(files):  # {relative path: text} -> a Source holding exactly those files
                ...
            return make

        @pytest.fixture
        def update_source(self):
            def update(source, files):  # replace the source's whole content with ``files``
                ...
            return update

Covered: ``resolve()`` is stable and follows content, its revision has the documented
form (``[REF@]sha1:<40 hex>`` or ``[REF@]sha256:<64 hex>``), ``fetch()`` returns an
Artifact whose path exists inside its tree and holds exactly the files, an unknown
revision is a clear error, digests follow content, URLs carry no credentials, and the
lifecycle (idempotent ``close()``, context manager). File names and values are hostile on
purpose (unicode, spaces, deep folders).

This module must never rely on one backend's quirks and never leave sources open.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from gitops.errors import GitopsError
from gitops.model import Artifact
from gitops.sources.base import Source
from gitops.testing.conformance.common import (
    UNICODE_TEXT,
    assert_no_credentials,
    assert_unknown_option_refused,
)

__all__ = ["FILES", "REVISION_RE", "SourceConformance"]

MakeSource = Callable[[dict[str, str]], Source]
UpdateSource = Callable[[Source, dict[str, str]], None]

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
#: ``sha256:<hex>`` (a directory), ``main@sha1:<hex>`` (Git), ``v1@sha256:<hex>`` (OCI).
REVISION_RE = re.compile(r"^(?:\S+@)?(?:sha1:[0-9a-f]{40}|sha256:[0-9a-f]{64})$")

FILES: dict[str, str] = {
    "kustomization.yaml": "resources:\n- app/deployment.yaml\n",
    "app/deployment.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n"
    ),
    "app/config.map.yaml": (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  text: '{UNICODE_TEXT}'\n"
    ),
    "app/ünïcødé names/wïth space.yaml": "# a file name with unicode and a space\n{}\n",
    "deep/a/b/c/d/e.yaml": "---\n# empty document\n...\n",
}


class SourceConformance:
    """The Source contract as pytest tests.

    Provide ``make_source`` (``files -> Source`` holding exactly those files) and
    ``update_source`` (``(source, files)``: replace the source's whole content).
    """

    # -- fixtures a backend provides -------------------------------------------------------

    @pytest.fixture
    def make_source(self) -> MakeSource:
        """``make_source(files) -> Source``; files maps relative paths to text."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `make_source` fixture: a callable taking "
            "{relative path: text} and returning a Source holding exactly those files"
        )

    @pytest.fixture
    def update_source(self) -> UpdateSource:
        """``update_source(source, files)``: make ``files`` the source's whole new content."""
        raise NotImplementedError(
            f"{type(self).__name__} must define an `update_source` fixture: a callable "
            "taking (source, {relative path: text}) that replaces the source's content"
        )

    # -- helpers and cleanup ---------------------------------------------------------------

    @pytest.fixture
    def _opened(self) -> list[Source]:
        return []

    @pytest.fixture(autouse=True)
    def _cleanup(self, _opened: list[Source]) -> Iterator[None]:
        """Close every source a test opened through ``new_source``."""
        yield
        for source in _opened:
            with contextlib.suppress(Exception):
                source.close()

    @pytest.fixture
    def new_source(self, make_source: MakeSource, _opened: list[Source]) -> MakeSource:
        """Like ``make_source``, and closed after the test."""

        def new_source(files: dict[str, str]) -> Source:
            source = make_source(dict(files))
            _opened.append(source)
            return source

        return new_source

    # -- resolve ---------------------------------------------------------------------------

    def test_resolve_is_stable_for_unchanged_content(self, new_source: MakeSource) -> None:
        source = new_source(FILES)
        first = source.resolve()
        assert isinstance(first, str) and first, f"resolve() returned {first!r}"
        assert source.resolve() == first, "resolve() changed without a content change"

    @pytest.mark.parametrize("change", ["edit", "add", "remove", "rename"])
    def test_resolve_changes_when_content_changes(
        self, new_source: MakeSource, update_source: UpdateSource, change: str
    ) -> None:
        source = new_source(FILES)
        before = source.resolve()
        update_source(source, _changed(FILES, change))
        assert source.resolve() != before, f"resolve() did not change after a file {change}"

    # -- fetch -----------------------------------------------------------------------------

    def test_fetch_holds_exactly_the_files(self, new_source: MakeSource) -> None:
        source = new_source(FILES)
        artifact = source.fetch(source.resolve())
        assert _read_tree(artifact.path) == {p: t.encode() for p, t in FILES.items()}

    def test_fetch_revision_equals_resolve(self, new_source: MakeSource) -> None:
        source = new_source(FILES)
        revision = source.resolve()
        artifact = source.fetch(revision)
        assert isinstance(artifact, Artifact), f"fetch returned {type(artifact).__name__}"
        assert artifact.revision == revision

    def test_fetch_after_update_has_the_new_content(
        self, new_source: MakeSource, update_source: UpdateSource
    ) -> None:
        source = new_source(FILES)
        source.fetch(source.resolve())
        changed = _changed(FILES, "edit")
        update_source(source, changed)
        artifact = source.fetch(source.resolve())
        assert _read_tree(artifact.path) == {p: t.encode() for p, t in changed.items()}

    def test_digest_is_sha256_and_follows_content(
        self, new_source: MakeSource, update_source: UpdateSource
    ) -> None:
        source = new_source(FILES)
        first = source.fetch(source.resolve())
        assert _DIGEST_RE.match(first.digest), f"digest {first.digest!r} is not sha256:<64 hex>"
        assert source.fetch(source.resolve()).digest == first.digest, "digest is not stable"
        update_source(source, _changed(FILES, "edit"))
        second = source.fetch(source.resolve())
        assert _DIGEST_RE.match(second.digest)
        assert second.digest != first.digest, "digest did not change with the content"

    # -- revisions and artifacts -----------------------------------------------------------

    def test_revision_has_the_documented_form(self, new_source: MakeSource) -> None:
        revision = new_source(FILES).resolve()
        assert REVISION_RE.match(revision), (
            f"revision {revision!r} is not [REF@]sha1:<40 hex> or [REF@]sha256:<64 hex>"
        )

    def test_fetch_returns_an_artifact_whose_path_exists_in_its_tree(
        self, new_source: MakeSource
    ) -> None:
        source = new_source(FILES)
        artifact = source.fetch(source.resolve())
        assert isinstance(artifact, Artifact), f"fetch returned {type(artifact).__name__}"
        assert artifact.path.is_dir(), f"artifact path {artifact.path} is not a directory"
        assert artifact.tree.is_dir(), f"artifact tree {artifact.tree} is not a directory"
        assert artifact.path.resolve().is_relative_to(artifact.tree.resolve()), (
            f"artifact path {artifact.path} is outside its tree {artifact.tree}"
        )
        assert all(isinstance(v, str) for v in artifact.metadata.values())

    def test_fetch_of_an_unknown_revision_is_a_clear_error(self, new_source: MakeSource) -> None:
        source = new_source(FILES)
        revision = source.resolve()
        ref, _, digest = revision.rpartition("@")
        algorithm, _, hexdigits = digest.partition(":")
        unknown = f"{ref + '@' if ref else ''}{algorithm}:{'0' * len(hexdigits)}"
        for bad in (unknown, "not a revision"):
            with pytest.raises(GitopsError) as info:
                source.fetch(bad)
            assert str(info.value), f"fetch({bad!r}) raised an empty error"

    def test_an_unknown_option_is_an_invalid_url_error(self, new_source: MakeSource) -> None:
        source = new_source(FILES)
        assert_unknown_option_refused(type(source), source.url)

    # -- lifecycle -------------------------------------------------------------------------

    def test_url_is_a_credential_free_string(self, new_source: MakeSource) -> None:
        source = new_source(FILES)
        assert isinstance(source.url, str) and source.url
        assert_no_credentials(source.url)
        artifact = source.fetch(source.resolve())
        assert_no_credentials(artifact.url)

    def test_close_is_idempotent(self, new_source: MakeSource) -> None:
        source = new_source(FILES)
        source.resolve()
        source.close()
        source.close()

    def test_context_manager_returns_the_source(self, make_source: MakeSource) -> None:
        source = make_source(dict(FILES))
        with source as entered:
            assert entered is source
            assert entered.resolve()
        source.close()  # still idempotent after __exit__


def _changed(files: Mapping[str, str], change: str) -> dict[str, str]:
    changed = dict(files)
    if change == "edit":
        changed["app/deployment.yaml"] = changed["app/deployment.yaml"].replace("2", "3")
    elif change == "add":
        changed["app/new.yaml"] = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: new\n"
    elif change == "remove":
        del changed["kustomization.yaml"]
    elif change == "rename":
        changed["app/renamed.yaml"] = changed.pop("app/deployment.yaml")
    else:
        raise ValueError(f"unknown change {change!r}")
    return changed


def _read_tree(root: Path) -> dict[str, bytes]:
    assert root.is_dir(), f"artifact path {root} is not a directory"
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
