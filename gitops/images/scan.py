"""Scanning an image repository: its tags through the OCI Distribution API, and a tag's digest.

``GET /v2/<name>/tags/list?n=N``, following ``Link: <…>; rel="next"`` pages (and, for a
registry that sends no ``Link`` but fills a page, asking again with ``last=``). Transport,
TLS and auth are exactly the OCI source's (:class:`~gitops.sources.oci.client.RegistryClient`
and its session: anonymous, Basic, bearer token, Docker ``config.json``, the
``GITOPS_OCI_*`` environment). Tag lists are kept per repository in a :class:`TagCache`.

Errors name the image (``oci://HOST/REPO``) and never a credential; this module never logs
a header, a token or a password.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from urllib3.exceptions import HTTPError

from gitops.cache import cache_root, sweep_unused, temp_name
from gitops.errors import InvalidURLError, SourceError, VerificationError
from gitops.images.spec import compile_go_regex
from gitops.options import validate_options
from gitops.sources.oci.auth import find_credentials
from gitops.sources.oci.client import RegistryClient
from gitops.sources.oci.options import OCIOptions, with_environment
from gitops.sources.oci.reference import OCIReference, parse_oci_url
from gitops.sources.oci.session import RegistryUnavailableError, discard
from gitops.urls import scrub

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_PAGE_SIZE",
    "TAG_LIST_RETENTION",
    "ImageRepository",
    "ScanResult",
    "TagCache",
    "credential_scope",
    "exclusion_filter",
    "image_display",
    "parse_image",
    "scan_tags",
    "tag_digest",
]

#: tags asked for per page of the tag list (registries may return fewer)
DEFAULT_PAGE_SIZE = 1000
#: seconds a cached tag list is used before the registry is asked again
DEFAULT_MAX_AGE = 60.0
#: seconds after which a tag list nobody wrote again is deleted (a repository no policy
#: scans any more, credentials since rotated): the folder holds what was used lately
TAG_LIST_RETENTION = 86400.0
_SWEEP_EVERY = 3600.0  # seconds between two sweeps of the folder (``FOLDER.swept`` beside it)
_MAX_PAGES = 10_000
_MAX_PAGE_BYTES = 16 << 20
#: all pages together (a registry linking page after page must not exhaust memory)
_MAX_LIST_BYTES = 64 << 20
#: the whole listing must end within this many times the transport's ``timeout``
_LISTING_TIMEOUTS = 10
_CREDENTIAL_OPTIONS = ("username", "password", "docker_config")
_USAGE = "an image is HOST[:PORT]/REPO (no tag or digest)"


def parse_image(image: str) -> OCIReference:
    """``HOST[:PORT]/REPO`` (or ``oci://HOST[:PORT]/REPO``) as a reference without a tag.

    Raises :class:`~gitops.errors.InvalidURLError` naming the (credential-free) image when
    it is not a repository name, has a tag or digest, or carries credentials.
    """
    text = image[len("oci://"):] if image.lower().startswith("oci://") else image
    shown = scrub(f"oci://{text}")
    if "://" in text:
        raise InvalidURLError(shown, _USAGE)
    ref, username, password = parse_oci_url(f"oci://{text}")
    if username is not None or password is not None:
        raise InvalidURLError(ref.display.rpartition(":")[0] if ref.tag else ref.display,
                              "credentials do not belong in an image name: use options, "
                              "GITOPS_OCI_USERNAME/GITOPS_OCI_PASSWORD or a Docker config.json")
    last = text.rsplit("/", 1)[-1]
    if "@" in text or ":" in last or ref.path.as_posix() != "." or "#" in text:
        raise InvalidURLError(shown, _USAGE)
    if "/" not in text:
        raise InvalidURLError(shown, _USAGE)
    return OCIReference(ref.host, ref.port, ref.repository)


def image_display(ref: OCIReference) -> str:
    """``oci://HOST[:PORT]/REPO``: how errors and results name a repository."""
    return f"oci://{ref.registry}/{ref.repository}"


def exclusion_filter(display: str, patterns: Sequence[str]) -> Callable[[str], bool]:
    """A predicate: True for a tag none of ``patterns`` (Go RE2 syntax) matches (a search).

    Raises InvalidURLError naming ``display`` and the entry's index for a bad pattern.
    """
    compiled: list[re.Pattern[str]] = []
    for index, pattern in enumerate(patterns):
        try:
            compiled.append(compile_go_regex(pattern))
        except ValueError as exc:
            raise InvalidURLError(display, f"exclusion list entry {index}: {exc}") from None
    return lambda tag: not any(p.search(tag) for p in compiled)


@dataclass(frozen=True)
class ScanResult:
    """The tags of one repository (exclusions applied, registry order), and what it cost."""

    tags: tuple[str, ...]
    round_trips: int
    cached: bool


class TagCache:
    """Tag lists per repository, kept on disk for ``max_age`` seconds.

    One JSON file per repository under ``<cache>/image-tags/`` (``$GITOPS_CACHE_DIR``
    like the other caches, or ``directory``). A list younger than ``max_age`` is used
    instead of asking the registry; an older one, or one :meth:`invalidate` removed, is
    listed again, so a new tag is seen at most ``max_age`` seconds after it was pushed.
    Files are replaced atomically; an unreadable file is a miss. No credentials are
    stored, only the tags. Bounded: one file per repository and credential scope, each
    at most one listing (its size capped as the listing is); :meth:`put` deletes, at most
    once an hour, the files not written for :data:`TAG_LIST_RETENTION` (or ``max_age``,
    if longer). ``clock`` (``time.time``) is for tests.
    """

    def __init__(self, directory: Path | None = None, *, max_age: float = DEFAULT_MAX_AGE,
                 clock: Callable[[], float] = time.time) -> None:
        if max_age < 0:
            raise ValueError("max_age must not be negative")
        self.directory = directory if directory is not None else cache_root() / "image-tags"
        self.max_age = max_age
        self._clock = clock

    def _path(self, ref: OCIReference, scope: str) -> Path:
        identity = f"{ref.registry}/{ref.repository}"
        digest = hashlib.sha256(f"{identity} {scope}".encode()).hexdigest()[:20]
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", identity)[:80].strip("._-") or "image"
        return self.directory / f"{readable}-{digest}.json"

    def get(self, ref: OCIReference, *, scope: str = "") -> tuple[str, ...] | None:
        """The cached tags of ``ref``'s repository while fresh, else None. ``scope``
        (:func:`credential_scope`) keeps lists listed with given credentials apart."""
        try:
            data = json.loads(self._path(ref, scope).read_text(encoding="utf-8"))
            fetched, tags = float(data["fetched"]), data["tags"]
            same = data["image"] == f"{ref.registry}/{ref.repository}"
        except (OSError, ValueError, KeyError, TypeError):
            return None
        age = self._clock() - fetched
        if not same or not isinstance(tags, list) or not 0 <= age < self.max_age:
            return None
        return tuple(str(tag) for tag in tags)

    def put(self, ref: OCIReference, tags: Iterable[str], *, scope: str = "") -> None:
        """Remember ``tags`` as ``ref``'s repository's list, now. Best effort: a full or
        read-only disk leaves the cache as it was."""
        path = self._path(ref, scope)
        data = {"image": f"{ref.registry}/{ref.repository}", "fetched": self._clock(),
                "tags": list(tags)}
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_name(temp_name(path.name))
            temp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(temp, path)
        with contextlib.suppress(OSError):
            self._sweep()

    def _sweep(self) -> None:
        """Delete the files (lists, a dead writer's temporary files) not written lately."""
        sweep_unused(self.directory, max(self.max_age, TAG_LIST_RETENTION),
                     marker=self.directory.with_name(self.directory.name + ".swept"),
                     every=_SWEEP_EVERY)

    def invalidate(self, image: str | OCIReference, *, scope: str = "") -> None:
        """Forget the tags of ``image`` (``HOST/REPO``): the next scan asks the registry."""
        ref = image if isinstance(image, OCIReference) else parse_image(image)
        with contextlib.suppress(FileNotFoundError):
            self._path(ref, scope).unlink()


def credential_scope(options: Mapping[str, Any]) -> str:
    """Which cached tag lists a scan with ``options`` may use: "" without credential
    options, else a fingerprint of them. A list read with one policy's credentials is
    never answered to a scan with other credentials or none (another tenant's policy)."""
    given = {k: str(options[k]) for k in _CREDENTIAL_OPTIONS if options.get(k) is not None}
    if not given:
        return ""
    return hashlib.sha256(json.dumps(given, sort_keys=True).encode()).hexdigest()


class ImageRepository:
    """An open connection to one image repository: its tags, and the digest of a tag.

    ``options`` are the OCI transport's (``username``, ``password``, ``docker_config``,
    ``ca_bundle``, ``insecure``, ``plain_http``, ``timeout``; see docs/oci.md), filled from
    the environment where not given. :attr:`round_trips` counts the HTTP requests sent.
    """

    def __init__(self, image: str, *, page_size: int = DEFAULT_PAGE_SIZE,
                 **options: Any) -> None:
        self.ref = parse_image(image)
        self.display = image_display(self.ref)
        if page_size < 1:
            raise InvalidURLError(self.display, "page size must be at least 1")
        self.page_size = page_size
        settings = with_environment(validate_options(OCIOptions, self.display, options))
        #: the tag cache's :func:`credential_scope` of the options given
        self.cache_scope = credential_scope(options)
        self.timeout = settings.timeout
        self._client = RegistryClient(
            self.ref, settings, display=self.display,
            credentials=lambda: find_credentials(self.ref.registry, settings, None, None,
                                                 display=self.display),
        )

    def __enter__(self) -> ImageRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"ImageRepository({self.display!r})"

    @property
    def round_trips(self) -> int:
        """HTTP requests sent to the registry and its token service so far."""
        return self._client.session.round_trips

    def list_tags(self) -> list[str]:
        """Every tag, in the registry's order, all pages (each tag once). Registries that
        ignore ``n`` (distribution 2.x answers every tag at once) take one round trip. Each
        page must arrive within the ``timeout`` option and the whole list within ten times
        it, however slowly the registry trickles bytes or however many pages it links.
        Raises RevisionNotFoundError for an unknown repository, AuthenticationError,
        SourceError (RegistryUnavailableError when it cannot be reached or is too slow)."""
        session = self._client.session
        started = time.monotonic()
        listing_deadline = started + self.timeout * _LISTING_TIMEOUTS
        base = f"{self._client.repo_url}/tags/list"
        url: str | None = f"{base}?n={self.page_size}"
        tags: list[str] = []
        known: set[str] = set()
        pages = 0
        received = 0
        while url is not None:
            pages += 1
            if pages > _MAX_PAGES:
                raise SourceError(self.display, "the registry's tag list pages do not end")
            page_started = time.monotonic()
            if page_started > listing_deadline:
                raise RegistryUnavailableError(
                    self.display, f"the registry did not send its tag list within "
                                  f"{self.timeout * _LISTING_TIMEOUTS:g}s ({pages - 1} pages)")
            response = session.request("GET", url, stream=True)
            if response.status != 200:
                raise session.status_error(response, "tag list", repository=response.status == 404)
            try:
                body = self._read_page(response, min(page_started + self.timeout,
                                                      listing_deadline), received)
            except BaseException:
                _abandon(response)  # draining a trickle would wait for all of it
                raise
            discard(response)
            received += len(body)
            page = _page_tags(self.display, body)
            fresh = [tag for tag in page if tag not in known]
            known.update(fresh)
            tags.extend(fresh)
            url = session.next_page(response.headers.get("Link"))
            if not fresh:  # a page with nothing new: the registry is going round in circles
                break
            if url is None and len(page) == self.page_size:
                # no Link, yet a full page: a registry that pages by ``last`` only
                url = f"{base}?n={self.page_size}&last={quote(page[-1], safe='')}"
        return tags

    def _read_page(self, response: Any, deadline: float, received: int) -> bytes:
        """A tag list page's body, read as it arrives: at most ``_MAX_PAGE_BYTES`` (and
        ``_MAX_LIST_BYTES`` with the ``received`` bytes of the pages before), and
        refused once ``deadline`` passes (the transport's timeout is per read, so a
        registry sending a byte now and then would otherwise never time out)."""
        session = self._client.session
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise RegistryUnavailableError(
                    self.display, f"the registry did not send a tag list page within "
                                  f"{self.timeout:g}s")
            try:
                chunk = response.read1(1 << 16, decode_content=True)
            except (HTTPError, OSError) as exc:
                raise session.translate(exc, "reading the tag list") from exc
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > _MAX_PAGE_BYTES:
                raise VerificationError(self.display, f"tag list page is larger than "
                                                      f"{_MAX_PAGE_BYTES} bytes")
            if received + size > _MAX_LIST_BYTES:
                raise VerificationError(self.display, f"tag list is larger than "
                                                      f"{_MAX_LIST_BYTES} bytes")
            chunks.append(chunk)

    def digest(self, tag: str) -> str:
        """The manifest digest (``sha256:…``) tag ``tag`` names: one HEAD request."""
        return self._client.head_manifest(tag)


def _abandon(response: Any) -> None:
    """Close a response's connection without reading the rest of its body."""
    with contextlib.suppress(HTTPError, OSError):
        response.close()
    response.release_conn()


def _page_tags(display: str, body: bytes) -> list[str]:
    try:
        page = json.loads(body).get("tags") or []
    except (ValueError, AttributeError):
        raise SourceError(display, "the registry's tag list is not valid JSON") from None
    if not isinstance(page, list):
        raise SourceError(display, "the registry's tag list has no list of tags")
    return [tag for tag in page if isinstance(tag, str)]


def scan_tags(
    image: str,
    *,
    exclude: Sequence[str] = (),
    cache: TagCache | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    repository: ImageRepository | None = None,
    **options: Any,
) -> ScanResult:
    """The tags of ``image`` (``HOST/REPO``) that no ``exclude`` pattern matches.

    With ``cache``, a fresh cached list is used (``round_trips`` 0, ``cached`` True) and a
    listing is stored. ``repository`` reuses an open :class:`ImageRepository` (then
    ``page_size`` and ``options`` are its own). Raises InvalidURLError for a bad image or
    exclusion pattern; the errors of :meth:`ImageRepository.list_tags`.
    """
    ref = repository.ref if repository is not None else parse_image(image)
    keep = exclusion_filter(image_display(ref), exclude)
    scope = repository.cache_scope if repository is not None else credential_scope(options)
    listed = cache.get(ref, scope=scope) if cache is not None else None
    if listed is not None:
        return ScanResult(tuple(filter(keep, listed)), 0, True)
    owned = repository is None
    repo = repository or ImageRepository(image, page_size=page_size, **options)
    try:
        before = repo.round_trips
        tags = repo.list_tags()
        trips = repo.round_trips - before
    finally:
        if owned:
            repo.close()
    if cache is not None:
        cache.put(ref, tags, scope=scope)
    return ScanResult(tuple(filter(keep, tags)), trips, False)


def tag_digest(image: str, tag: str, **options: Any) -> str:
    """The manifest digest ``image:tag`` names (HEAD request); RevisionNotFoundError if none."""
    with ImageRepository(image, **options) as repo:
        return repo.digest(tag)
