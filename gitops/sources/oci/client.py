"""The few OCI Distribution API calls a GitOps source and ``push`` need.

Manifest HEAD/GET/PUT, the paginated tag list, blob GET (streamed), blob HEAD and
monolithic upload, over a :class:`~gitops.sources.oci.session.RegistrySession` (which
owns transport, auth and error translation). Manifests are checked against their digest
here; blobs are verified by whoever reads the :class:`BlobStream`. This module never
trusts a registry's redirect or page link to another host.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO
from urllib.parse import quote

import urllib3
from urllib3.exceptions import HTTPError

from gitops.errors import RevisionNotFoundError, SourceError, VerificationError
from gitops.sources.oci.auth import Credentials
from gitops.sources.oci.options import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    OCIOptions,
)
from gitops.sources.oci.reference import DIGEST_RE, OCIReference
from gitops.sources.oci.session import RegistrySession, discard

__all__ = ["BlobStream", "RawManifest", "RegistryClient"]

#: Tags asked for per page of the tag list (registries may return fewer).
TAG_PAGE_SIZE = 1000
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST))
_MAX_MANIFEST = 4 << 20
_MAX_PAGES = 10_000


@dataclass(frozen=True, slots=True)
class RawManifest:
    """A manifest's bytes, verified against ``digest``."""

    digest: str
    media_type: str
    content: bytes


class BlobStream:
    """A blob being downloaded: ``read(n)`` returns raw bytes; errors become SourceErrors."""

    def __init__(
        self, response: urllib3.BaseHTTPResponse, fail: Callable[[Exception], SourceError]
    ) -> None:
        self._response = response
        self._fail = fail
        self._done = False

    def read(self, size: int) -> bytes:
        try:
            data = self._response.read(size, decode_content=False)
        except (HTTPError, OSError) as exc:
            raise self._fail(exc) from exc
        self._done = not data
        return data

    def close(self) -> None:
        """Release the connection; one abandoned mid-blob is closed, not reused."""
        if not self._done:
            self._response.close()
        self._response.release_conn()


class RegistryClient:
    """The Distribution API calls for one repository. ``display`` is the credential-free URL.

    ``credentials`` is called at most once, when the registry first asks for them;
    ``push=True`` asks token services for ``pull,push`` access.
    """

    def __init__(
        self,
        ref: OCIReference,
        options: OCIOptions,
        *,
        display: str,
        credentials: Callable[[], Credentials | None],
        push: bool = False,
    ) -> None:
        self.ref = ref
        self.display = display
        self.session = RegistrySession(ref, options, display=display, credentials=credentials,
                                       push=push)
        self.repo_url = f"{self.session.base}/v2/{ref.api_repository}"

    def close(self) -> None:
        self.session.close()

    # -- the API ---------------------------------------------------------------------

    def head_manifest(self, reference: str) -> str:
        """The digest of the manifest ``reference`` (a tag or digest) names: one HEAD request."""
        url = f"{self.repo_url}/manifests/{reference}"
        response = self.session.request("HEAD", url, headers={"Accept": MANIFEST_ACCEPT})
        if response.status == 200:
            digest = response.headers.get("Docker-Content-Digest", "")
            if DIGEST_RE.fullmatch(digest):
                return digest
            return self.get_manifest(reference).digest  # a registry that does not say
        discard(response)
        if response.status == 404:
            raise self._not_found(reference)
        # HEAD answers carry no body: ask again with GET for the registry's explanation
        response = self.session.request("GET", url, headers={"Accept": MANIFEST_ACCEPT},
                                        stream=True)
        raise self.session.status_error(response, f"manifest {reference}")

    def _not_found(self, reference: str) -> SourceError:
        """Whether the tag (or digest) or the whole repository is missing: the tag list says."""
        response = self.session.request("GET", f"{self.repo_url}/tags/list?n=1")
        if response.status == 404:
            return self.session.status_error(response, f"repository {self.ref.repository}",
                                      repository=True)
        discard(response)
        what = "manifest" if DIGEST_RE.fullmatch(reference) else "tag"
        return RevisionNotFoundError(
            self.display, f"{what} {reference} not found in {self.ref.repository}"
        )

    def get_manifest(self, reference: str) -> RawManifest:
        """The manifest ``reference`` names, checked against its digest."""
        url = f"{self.repo_url}/manifests/{reference}"
        response = self.session.request("GET", url, headers={"Accept": MANIFEST_ACCEPT}, stream=True)
        if response.status != 200:
            raise self.session.status_error(response, f"manifest {reference}")
        try:
            content = self.session.read_limited(response, _MAX_MANIFEST, "manifest")
        finally:
            response.release_conn()
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        expected = reference if DIGEST_RE.fullmatch(reference) else None
        expected = expected or response.headers.get("Docker-Content-Digest") or digest
        if DIGEST_RE.fullmatch(expected) and expected != digest:
            raise VerificationError(
                self.display, f"manifest content has digest {digest}, expected {expected}"
            )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return RawManifest(digest, media_type, content)

    def list_tags(self) -> list[str]:
        """Every tag of the repository, following ``Link: <...>; rel="next"`` pages."""
        url: str | None = f"{self.repo_url}/tags/list?n={TAG_PAGE_SIZE}"
        tags: list[str] = []
        seen: set[str] = set()
        while url is not None and len(seen) < _MAX_PAGES:
            seen.add(url)
            response = self.session.request("GET", url, stream=True)
            if response.status != 200:
                raise self.session.status_error(response, "tag list")
            try:
                body = self.session.read_limited(response, _MAX_MANIFEST, "tag list")
            finally:
                response.release_conn()
            try:
                page = json.loads(body).get("tags") or []
            except (ValueError, AttributeError) as exc:
                raise SourceError(self.display, f"tag list is not valid JSON: {exc}") from exc
            tags.extend(str(tag) for tag in page)
            url = self.session.next_page(response.headers.get("Link"))
            if url in seen:
                break
        return tags

    def open_blob(self, digest: str) -> BlobStream:
        """Start downloading blob ``digest``; the caller verifies what it reads."""
        response = self.session.request("GET", f"{self.repo_url}/blobs/{digest}", stream=True)
        if response.status != 200:
            raise self.session.status_error(response, f"blob {digest}")
        return BlobStream(response, lambda exc: self.session.translate(exc, f"download of blob {digest}"))

    def blob_exists(self, digest: str) -> bool:
        response = self.session.request("HEAD", f"{self.repo_url}/blobs/{digest}")
        if response.status == 200:
            return True
        if response.status == 404:
            return False
        raise self.session.status_error(response, f"blob {digest}")

    def upload_blob(self, digest: str, size: int, body: bytes | IO[bytes]) -> None:
        """Upload a blob in one PUT unless the registry already has it."""
        if self.blob_exists(digest):
            return
        response = self.session.request("POST", f"{self.repo_url}/blobs/uploads/",
                                headers={"Content-Length": "0"})
        if response.status != 202:
            raise self.session.status_error(response, "blob upload")
        location = self.session.same_origin(response.headers.get("Location", ""), "upload location")
        separator = "&" if "?" in location else "?"
        response = self.session.request(
            "PUT", f"{location}{separator}digest={quote(digest)}", body=body,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        if response.status not in (201, 204):
            raise self.session.status_error(response, f"blob {digest} upload")

    def put_manifest(self, tag: str, content: bytes, media_type: str) -> str:
        """Store a manifest under ``tag``; returns its digest (checked against the registry's)."""
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        response = self.session.request("PUT", f"{self.repo_url}/manifests/{tag}", body=content,
                                headers={"Content-Type": media_type})
        if response.status not in (200, 201):
            raise self.session.status_error(response, f"manifest {tag}")
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != digest:
            raise VerificationError(self.display, f"registry stored manifest as {stored}, "
                                                  f"pushed {digest}")
        return digest

