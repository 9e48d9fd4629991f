"""Write a Git tree into a plain, read-only directory: the files of one commit, and nothing else.

The result has no ``.git``; tree entries that could escape or confuse a checkout
(``.git``, ``..``, names with ``/``) and symlinks leading outside the written root are
refused, Git LFS pointers are refused (they would be silent garbage to a renderer), and
submodules become empty directories unless asked for. When the previous checkout of
the same source is at hand, unchanged files are hard-linked from it instead of written:
artifacts are read-only, so sharing inodes is safe, and a one-file commit costs one
write. Files are created read-only (``0444``) by a few writer threads (creating many
small files is mostly the kernel's work, which threads overlap); directories are made
read-only (``0555``) once everything is written. Blobs that the fetch just brought
(:attr:`Objects.fetched`) are written without reading the pack again. This module
writes only under the directory it is given and never fetches (submodule commits are
obtained through :class:`Objects`).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dulwich.object_store import BaseObjectStore
from dulwich.objects import S_ISGITLINK, ObjectID, RawObjectID, Tree, sha_to_hex
from dulwich.pack import UnpackedObjectIterator

from gitops.errors import SourceError
from gitops.tree import IGNORE_FILE, file_sha256, walk

__all__ = ["Checkout", "CheckoutResult", "Objects", "Previous", "artifact_digest"]

LFS_POINTER = b"version https://git-lfs.github.com/spec/"
_LFS_MAX = 1024  # pointers are ~130 bytes; real content this small is cheap to check
_BAD_NAMES = frozenset({"", ".", ".."})
_BLOB = 3  # the pack type number of a blob
_BULK = 64  # from this many blobs on, read them pack by pack
_WORKERS = 4  # writer threads
_BATCH_FILES, _BATCH_BYTES = 128, 1 << 20  # of one directory, handed to a writer at once
_IN_FLIGHT = 64 << 20  # bytes handed to writer threads and not yet written, at most
_FILE_MODE, _DIR_MODE = 0o444, 0o555
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
    | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)

_Pending = tuple[str, str, int]  # (where to write, path in the artifact, mode)


class Objects(Protocol):
    """Where a checkout reads objects, and how it reaches a submodule's commit."""

    @property
    def store(self) -> BaseObjectStore: ...

    @property
    def fetched(self) -> Mapping[ObjectID, bytes]:
        """Blobs just fetched (id -> content): written from here, not read from the pack."""
        ...

    def submodule(self, path: str, commit: ObjectID) -> tuple[Objects, ObjectID]:
        """The objects of the submodule at ``path`` (relative to this repository's root)
        and the root tree of ``commit`` in it."""
        ...


@dataclass(frozen=True)
class Previous:
    """An earlier checkout of the same source, to hard-link unchanged files from."""

    root: Path
    #: path -> blob id of each regular file in that checkout
    files: Mapping[str, str] = field(default_factory=dict)
    #: blob id -> SHA-256 of its content
    sha256: Mapping[str, str] = field(default_factory=dict)
    #: blob id -> its size in bytes
    sizes: Mapping[str, int] = field(default_factory=dict)


@dataclass
class CheckoutResult:
    """What was written: ``files`` maps each regular file's path to its blob id."""

    files: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    symlinks: list[str] = field(default_factory=list)
    linked: int = 0
    written: int = 0

    def total_bytes(self) -> int | None:
        """Bytes of the regular files (each path counted), or None if a size is unknown."""
        sizes = self.sizes
        try:
            return sum(sizes[blob] for blob in self.files.values())
        except KeyError:
            return None


class Checkout:
    """Writes trees for one source; ``shown`` (URL) and ``at`` (revision) name errors."""

    def __init__(self, shown: str, at: str, *, recurse_submodules: bool = False) -> None:
        self._shown = shown
        self._at = at
        self._recurse = recurse_submodules

    def run(
        self,
        objects: Objects,
        tree: ObjectID,
        dest: Path,
        *,
        base: str = "",
        previous: Previous | None = None,
    ) -> CheckoutResult:
        """Write ``tree`` into the existing empty directory ``dest``, and make ``dest``
        and everything in it read-only (files ``0444``, directories ``0555``).

        ``base`` is the tree's path in the repository (for messages and ``.gitmodules``).
        Raises SourceError naming the URL, the revision and the offending path, and
        OSError when ``dest`` cannot be written; ``dest`` must then be thrown away.
        """
        result = CheckoutResult()
        self._result = result
        self._previous = previous
        self._base = f"{base}/" if base else ""
        self._pending: dict[int, tuple[Objects, dict[ObjectID, list[_Pending]]]] = {}
        root = os.fspath(dest)
        self._dirs = [root]
        with _Writer() as writer:
            self._writer = writer
            self._tree(objects, tree, root, "", self._base)
            for source, pending in self._pending.values():
                self._write_pending(source, pending)
            writer.wait()
        self._check_symlinks(dest)
        for directory in reversed(self._dirs):
            os.chmod(directory, _DIR_MODE)
        return result

    # -- walking -------------------------------------------------------------------

    def _tree(
        self, objects: Objects, tree_id: ObjectID, dest: str, rel: str, module_dir: str
    ) -> None:
        """Write one tree. ``rel`` is its path in the artifact, ``module_dir`` its path
        in the current (sub)module with a trailing slash (for ``.gitmodules``)."""
        tree = objects.store[tree_id]
        if not isinstance(tree, Tree):
            raise self._error(rel or ".", "is not a directory in the repository")
        prefix = f"{rel}/" if rel else ""
        dest_prefix = f"{dest}/"
        result, previous = self._result, self._previous
        old_files = previous.files if previous is not None else None
        old_root = f"{previous.root}/" if previous is not None else ""
        fetched = objects.fetched
        for entry in tree.iteritems():  # hot loop: one iteration per file of the artifact
            name = os.fsdecode(entry.path)
            if name in _BAD_NAMES or "/" in name or "\x00" in name or name.lower() == ".git":
                raise self._error(prefix + name, "is not a valid file name in a checkout")
            child = prefix + name
            target = dest_prefix + name
            mode = entry.mode
            kind = mode & 0o170000
            if kind == 0o100000:
                blob = entry.sha.decode("ascii")
                if old_files is not None and old_files.get(child) == blob:
                    # links are cheap (no inode to allocate): threads would not pay here
                    try:
                        os.link(old_root + child, target)
                    except OSError:
                        pass  # the old artifact was pruned meanwhile, or another filesystem
                    else:
                        result.files[child] = blob
                        known = previous.sha256.get(blob) if previous is not None else None
                        if known is not None:
                            result.sha256[blob] = known
                        size = previous.sizes.get(blob) if previous is not None else None
                        if size is not None:
                            result.sizes[blob] = size
                        result.linked += 1
                        continue
                data = fetched.get(entry.sha)
                if data is not None:
                    self._blob(entry.sha, data, [(target, child, mode)])
                    continue
                # written after the walk, in pack order (see _write_pending)
                _, waiting = self._pending.setdefault(id(objects), (objects, {}))
                waiting.setdefault(entry.sha, []).append((target, child, mode))
            elif kind == 0o040000:
                os.mkdir(target)
                self._dirs.append(target)
                self._tree(objects, entry.sha, target, child, f"{module_dir}{name}/")
            elif kind == 0o120000:
                self._symlink(objects, entry.sha, target, child)
            elif S_ISGITLINK(mode):
                os.mkdir(target)
                self._dirs.append(target)
                if self._recurse:  # else an empty directory, as `git clone` leaves it
                    sub_objects, sub_tree = objects.submodule(module_dir + name, entry.sha)
                    self._tree(sub_objects, sub_tree, target, child, "")
            else:
                raise self._error(child, f"has an unknown mode {mode:o}")
        self._writer.flush(dest)

    def _write_pending(self, objects: Objects, pending: dict[ObjectID, list[_Pending]]) -> None:
        """Write the blobs the walk could not link.

        Reading blobs one by one resolves each delta chain again and again; many blobs
        are read in one pass per pack instead, each object inflated once (dulwich's
        delta-chain iterator), and the rest one by one.
        """
        store = objects.store
        packs = getattr(store, "packs", None) if len(pending) >= _BULK else None
        for pack in packs or ():
            if not pending:
                break
            walker = UnpackedObjectIterator.for_pack_subset(
                pack, list(pending), allow_missing=True, resolve_ext_ref=_chunks(store))
            for unpacked in walker:
                if unpacked.obj_type_num != _BLOB or unpacked.obj_chunks is None:
                    continue
                sha = ObjectID(sha_to_hex(unpacked.sha()))
                targets = pending.pop(sha, None)
                if targets is not None:
                    self._blob(sha, b"".join(unpacked.obj_chunks), targets)
        for sha, targets in pending.items():
            _, data = store.get_raw(sha)
            self._blob(sha, data, targets)

    def _blob(self, sha: ObjectID, data: bytes, targets: list[_Pending]) -> None:
        blob = sha.decode("ascii")
        result = self._result
        if len(data) < _LFS_MAX and data.startswith(LFS_POINTER):
            raise self._error(targets[0][1], "is a Git LFS pointer, and Git LFS is not "
                                             "supported: commit the file itself")
        for target, rel, _ in targets:
            self._writer.write(target, data)
            result.files[rel] = blob
            result.written += 1
        if blob not in result.sha256:
            result.sha256[blob] = hashlib.sha256(data).hexdigest()
        result.sizes[blob] = len(data)

    def _symlink(self, objects: Objects, sha: ObjectID, target: str, rel: str) -> None:
        _, data = objects.store.get_raw(sha)
        link = os.fsdecode(data)
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
        if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise self._error(rel, f"is a symlink to {link!r}, which leads outside "
                                   "the fetched tree")
        os.symlink(link, target)
        self._result.symlinks.append(rel)

    # -- checks --------------------------------------------------------------------

    def _check_symlinks(self, dest: Path) -> None:
        """Chains of links can escape where each link alone does not: resolve them all."""
        root = os.path.realpath(dest)
        inside = root + os.sep
        for rel in self._result.symlinks:
            real = os.path.realpath(os.path.join(root, rel))
            if real != root and not real.startswith(inside):
                raise self._error(rel, "is a symlink that leads outside the fetched tree")

    def _error(self, rel: str, reason: str) -> SourceError:
        """``rel`` is a path in the artifact; messages show it as a path in the repository."""
        return SourceError(self._shown, f"{self._base}{rel} {reason} (at {self._at})")


def _chunks(store: BaseObjectStore) -> Callable[[bytes], tuple[int, list[bytes]]]:
    """A delta base outside the pack, as dulwich's chain iterator wants it."""

    def resolve(sha: bytes) -> tuple[int, list[bytes]]:
        type_num, data = store.get_raw(RawObjectID(sha))
        return type_num, [data]

    return resolve


class _Writer:
    """Creates read-only files on a few threads; :meth:`wait` raises the first failure.
    Leaving the ``with`` block waits for every write in flight, even on error.

    Files are handed over in batches of one directory: creating a file locks its
    directory, so threads working in different directories do not wait for each other.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="gitops-checkout")
        self._batches: dict[str, tuple[list[tuple[str, bytes]], list[int]]] = {}
        self._queue: deque[tuple[Future[None], int]] = deque()
        self._in_flight = 0
        self._chmod = _umask_hides(_FILE_MODE)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def write(self, path: str, data: bytes) -> None:
        """Create ``path`` (which must not exist) holding ``data``, perhaps later."""
        directory = path.rpartition("/")[0]
        batch = self._batches.get(directory)
        if batch is None:
            batch = self._batches[directory] = ([], [0])
        files, size = batch
        files.append((path, data))
        size[0] += len(data)
        if len(files) >= _BATCH_FILES or size[0] >= _BATCH_BYTES:
            self.flush(directory)

    def flush(self, directory: str) -> None:
        """Start writing what waits for ``directory`` (its files are all known)."""
        batch = self._batches.pop(directory, None)
        if batch is None:
            return
        files, (size,) = batch
        while self._queue and self._in_flight + size > _IN_FLIGHT:
            self._done()
        future = self._pool.submit(_write_files, files, self._chmod)
        self._queue.append((future, size))
        self._in_flight += size

    def wait(self) -> None:
        """Return when every file is written; raise the first failure."""
        for directory in list(self._batches):
            self.flush(directory)
        while self._queue:
            self._done()

    def _done(self) -> None:
        future, size = self._queue.popleft()
        self._in_flight -= size
        future.result()


def _write_files(batch: list[tuple[str, bytes]], chmod: bool) -> None:
    fchmod = getattr(os, "fchmod", None) if chmod else None
    for path, data in batch:
        fd = os.open(path, _OPEN_FLAGS, _FILE_MODE)
        try:
            if fchmod is not None:
                fchmod(fd, _FILE_MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        if chmod and fchmod is None:
            os.chmod(path, _FILE_MODE)


def _umask_hides(mode: int) -> bool:
    """Whether the process umask removes bits of ``mode`` (then files are chmod-ed)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return bool(int(line.split()[1], 8) & mode)
    except (OSError, ValueError, IndexError):
        pass
    return True  # unknown: chmod every file, as if it did


def artifact_digest(root: Path, result: CheckoutResult) -> str:
    """``sha256:<hex>`` exactly as :func:`gitops.tree.tree_digest` computes it, from the
    content hashes recorded while writing instead of reading every file again.

    Without symlinks and ``.sourceignore`` files, the files :func:`gitops.tree.walk`
    would visit are the non-hidden ones written, in sorted order: no need to list the
    directories again. Otherwise the tree is walked, and an in-root symlink is hashed
    as the file it resolves to.
    """
    digest = hashlib.sha256()
    ignores = any(rel == IGNORE_FILE or rel.endswith("/" + IGNORE_FILE) for rel in result.files)
    if result.symlinks or ignores:
        real_root = os.path.realpath(root)
        items: list[tuple[str, str | None, str | None]] = [
            (item.relpath, os.fspath(item.path), result.files.get(item.relpath)
             or result.files.get(os.path.relpath(item.path, real_root)))
            for item in walk(root)]
    else:
        items = [(rel, None, result.files[rel]) for rel in sorted(result.files)
                 if not (rel.startswith(".") or "/." in rel)]
    lines = []  # "<path>\0<sha256>\n" for each file; fsencode-d in one piece
    for rel, path, blob in items:
        content = result.sha256.get(blob) if blob is not None else None
        if content is None:
            content = file_sha256(path if path is not None else os.path.join(root, rel))
            if blob is not None:
                result.sha256[blob] = content
        lines.append(f"{rel}\0{content}\n")
    digest.update(os.fsencode("".join(lines)))
    return f"sha256:{digest.hexdigest()}"
