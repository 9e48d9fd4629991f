"""The OCI artifact source: desired state published to a container registry.

``resolve()`` is one manifest HEAD (plus the paginated tag list for ``#semver=``) and
reports ``<tag>@sha256:<manifest digest>``, or ``sha256:<digest>`` for a digest pin.
``fetch(revision)`` reads the manifest by digest, selects the layer (Flux's content type
by default), and streams, verifies and safely extracts it once into the read-only
artifact cache (:class:`gitops.cache.ArtifactStore`, keyed by layer digest), whose
bounds (``cache_max_bytes``, ``cache_max_age``) are applied after every fetch that adds
an artifact. The whole artifact is ``Artifact.root``; ``#path=`` only moves
``Artifact.path``. Nothing of an artifact that fails verification is ever handed to the
engine, and no credential ever appears in ``url``, an error, a log line or an
:class:`~gitops.model.Artifact`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

from gitops.cache import ArtifactStore, still_cached
from gitops.errors import RevisionNotFoundError
from gitops.model import Artifact
from gitops.options import PluginOptions, validate_options
from gitops.sources.base import Source
from gitops.sources.fragment import fragment_options, location
from gitops.sources.oci.auth import find_credentials
from gitops.sources.oci.client import RegistryClient
from gitops.sources.oci.extract import extract_layer
from gitops.sources.oci.manifest import Descriptor, parse_manifest, select_layer
from gitops.sources.oci.options import SECRET, OCISourceOptions, with_environment
from gitops.sources.oci.reference import OCIReference, parse_oci_url
from gitops.sources.oci.verify import ExtractLimits
from gitops.versions import parse_range, select_highest

__all__ = ["OCISource"]

log = logging.getLogger("gitops.sources.oci")

_REMEMBERED_ARTIFACTS = 4  # fetched artifacts answered from memory

_REVISION_RE = re.compile(
    r"(?:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})@)?(?P<digest>sha256:[0-9a-f]{64})"
)


class OCISource(Source):
    """An artifact in an OCI registry; ``url`` is the credential-free ``oci://`` URL.

    Options (all optional; :class:`OCISourceOptions`, docs/oci.md): ``path``, ``semver``,
    ``username``, ``password``, ``docker_config``, ``ca_bundle``, ``insecure``,
    ``plain_http``, ``layer_media_type``, ``max_size``, ``max_extracted_size``,
    ``max_files``, ``timeout``, ``cache_dir``, ``cache_max_bytes``, ``cache_max_age``.
    """

    scheme = "oci"
    Options = OCISourceOptions

    def __init__(self, url: str, **options: Any) -> None:
        """Open ``url`` with ``options``; the same as :meth:`from_url`."""
        merged = {**self.url_options(url), **options}
        self._open(url, validate_options(OCISourceOptions, location(url), merged))

    @classmethod
    def url_options(cls, url: str) -> dict[str, Any]:
        """The options in the URL's fragment (``#path=prod&semver=^1&max-files=500``).

        The password is refused in a fragment: give it in the userinfo (scrubbed), as a
        keyword argument or in the environment.
        """
        return fragment_options(location(url), url.partition("#")[2], secret=SECRET)

    @classmethod
    def from_options(cls, url: str, options: PluginOptions) -> Self:
        """Open ``url`` with validated ``options`` (the URL's own included)."""
        if not isinstance(options, OCISourceOptions):
            raise TypeError(f"{cls.__name__} takes OCISourceOptions, "
                            f"not {type(options).__name__}")
        source = cls.__new__(cls)
        source._open(url, options)
        return source

    def _open(self, url: str, options: OCISourceOptions) -> None:
        selection = [f"path={quote(options.path, safe='/')}"] if options.path else []
        if options.semver is not None:
            selection.append(f"semver={quote(options.semver, safe='')}")
        location = url.partition("#")[0] + ("#" + "&".join(selection) if selection else "")
        self.ref: OCIReference
        self.ref, username, password = parse_oci_url(location)
        self.url = self.ref.display
        self.options: OCISourceOptions = with_environment(options)
        self._fetched: dict[str, Artifact] = {}
        self._store = ArtifactStore(self.options.cache_dir)
        self._client = RegistryClient(
            self.ref, self.options, display=self.url,
            credentials=lambda: find_credentials(
                self.ref.registry, self.options, username, password, display=self.url
            ),
        )
        # manifest digest -> (selected layer, manifest annotations); manifests are immutable
        self._layers: dict[str, tuple[Descriptor, dict[str, str]]] = {}

    def identity(self) -> str:
        """The repository and ``#path=``, without tag, digest or ``semver``."""
        ref = self.ref
        path = f"#path={ref.path}" if str(ref.path) != "." else ""
        return f"oci://{ref.registry}/{ref.repository}{path}"

    def resolve(self) -> str:
        """``<tag>@sha256:<manifest digest>`` (``sha256:<digest>`` for a pinned digest).

        One HEAD request for a tag; the tag list first for ``#semver=``. Raises
        RevisionNotFoundError for an unknown tag, digest or repository, or when no tag
        matches the range; AuthenticationError; SourceError when the registry fails.
        """
        ref = self.ref
        if ref.digest:
            self._client.head_manifest(ref.digest)
            return f"{ref.tag}@{ref.digest}" if ref.tag else ref.digest
        tag = self._select_tag() if ref.semver is not None else (ref.tag or "latest")
        return f"{tag}@{self._client.head_manifest(tag)}"

    def tags(self) -> list[str]:
        """Every tag of the repository (all pages of the registry's tag list)."""
        return self._client.list_tags()

    def _select_tag(self) -> str:
        expression = self.ref.semver or ""
        tags = self.tags()
        chosen = select_highest(tags, parse_range(self.url, expression))
        if chosen is None:
            raise RevisionNotFoundError(
                self.url, f"no tag matches semver {expression!r} ({len(tags)} tags listed)"
            )
        return chosen

    def fetch(self, revision: str) -> Artifact:
        """The artifact at ``revision``, extracted once into the cache and read-only.

        Raises RevisionNotFoundError for a malformed or unknown revision or a missing
        ``#path=``; VerificationError when the manifest or layer does not match its digest,
        is too large or holds an unsafe entry (then nothing is kept); SourceError when the
        manifest has no layer of the selected media type.
        """
        match = _REVISION_RE.fullmatch(revision)
        if match is None:
            raise RevisionNotFoundError(
                self.url, f"{revision!r} is not an OCI revision (TAG@sha256:<hex> or sha256:<hex>)"
            )
        known = self._fetched.get(revision)
        if known is not None and still_cached(known.tree):
            return known
        layer, annotations = self._layer_of(match.group("digest"))
        key = "oci-" + layer.digest.removeprefix("sha256:")
        made: list[bool] = []

        def fill(tmp: Path) -> None:
            self._extract(layer, tmp)
            made.append(True)

        root = self._store.materialize(key, fill)
        if made:
            self._prune(key)
        sub = str(self.ref.path)
        path = root if sub == "." else root / sub
        if not path.is_dir():
            raise RevisionNotFoundError(
                self.url, f"path {sub} is not a directory of the artifact at {revision}"
            )
        artifact = Artifact(url=self.url, revision=revision, digest=layer.digest, path=path,
                            root=None if sub == "." else root, metadata=annotations)
        self._fetched[revision] = artifact
        while len(self._fetched) > _REMEMBERED_ARTIFACTS:
            self._fetched.pop(next(iter(self._fetched)))
        return artifact

    def prune_cache(self) -> list[str]:
        """Apply the cache bounds now (never to the artifacts this source holds); returns
        the keys removed."""
        keep = frozenset(a.tree.name for a in self._fetched.values())
        return self._store.prune(max_bytes=self.options.cache_max_bytes,
                                 max_age=self.options.cache_max_age, keep=keep)

    def _prune(self, key: str) -> None:
        """The bounds after a fetch that added ``key``; a failure here never fails the fetch."""
        try:
            removed = self._store.prune(max_bytes=self.options.cache_max_bytes,
                                        max_age=self.options.cache_max_age,
                                        keep=frozenset({key}))
        except OSError as exc:  # a full or read-only disk must not fail a good fetch
            log.warning("%s: pruning the cache at %s failed: %s", self.url, self._store.root, exc)
            return
        if removed:
            log.info("%s: cache pruned: %d artifacts", self.url, len(removed))

    def _layer_of(self, digest: str) -> tuple[Descriptor, dict[str, str]]:
        known = self._layers.get(digest)
        if known is None:
            raw = self._client.get_manifest(digest)
            info = parse_manifest(self.url, raw.content, raw.media_type)
            known = (select_layer(self.url, info, self.options.layer_media_type),
                     dict(info.annotations))
            self._layers[digest] = known
        return known

    def _extract(self, layer: Descriptor, dest: Path) -> None:
        limits = ExtractLimits(self.options.max_size, self.options.max_extracted_size,
                               self.options.max_files)
        stream = self._client.open_blob(layer.digest)
        try:
            extract_layer(stream, dest, digest=layer.digest, size=layer.size, limits=limits,
                          display=self.url)
        finally:
            stream.close()

    def close(self) -> None:
        """Close pooled connections. Idempotent."""
        self._client.close()
