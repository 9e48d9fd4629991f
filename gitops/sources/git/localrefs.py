"""Read the refs a ``git+file://`` source asks about straight from the repository's files.

``resolve()`` of a local repository needs one or two refs (``HEAD`` and the branch it
names, ``@REF``, or the tags for ``semver=``), not every ref of the repository peeled
(dulwich's ``get_refs`` plus ``get_peeled`` costs ~30 ms with a few hundred tags). This
reads ``HEAD``, the loose ref files under the asked prefixes and ``packed-refs``, as git
itself does, and opens the object store only to peel a tag ``packed-refs`` has not
peeled already. Anything unusual (linked worktrees, reftable, another object format)
returns None so the caller takes the general path. Reads only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path

from dulwich.objects import ObjectID, Tag
from dulwich.repo import Repo

__all__ = ["read_local_refs"]

_SHA1 = re.compile(r"[0-9a-f]{40}")
_MAX_SYMREF_DEPTH = 5
_TAGS = "refs/tags/"

#: (refs, peeled, head) as :class:`~gitops.sources.git.transport.RemoteRefs` takes them
LocalRefs = tuple[dict[str, str], dict[str, str], str | None]


def read_local_refs(path: str, prefixes: Sequence[str]) -> LocalRefs | None:
    """The refs under ``prefixes`` (``"HEAD"`` for HEAD and the branch it names) of the
    repository at ``path`` (bare, or a work tree with ``.git``); None when the layout is
    not the plain one (let dulwich read it), or there is no repository.
    """
    gitdir = _gitdir(Path(path))
    if gitdir is None or (gitdir / "commondir").exists() or (gitdir / "reftable").exists():
        return None
    if "objectformat" in _read(gitdir / "config").lower():
        return None  # only SHA-1 repositories keep the layout read here
    packed, packed_peeled, fully_peeled = _packed_refs(gitdir)
    refs: dict[str, str] = {}
    head: str | None = None
    for prefix in prefixes:
        if prefix == "HEAD":
            target = _read(gitdir / "HEAD").strip()
            if target.startswith("ref: "):
                head = target[5:].strip()
                sha = _follow(gitdir, head, packed)
                if sha is not None:
                    refs[head] = sha
            else:
                sha = target if _SHA1.fullmatch(target) else None
            if sha is not None:
                refs["HEAD"] = sha
            continue
        for name, sha in packed.items():
            if name.startswith(prefix):
                refs[name] = sha
        refs.update(_loose(gitdir, prefix, packed))
    tags = [name for name in refs if name.startswith(_TAGS)]
    peeled = {name: packed_peeled[name] for name in tags if name in packed_peeled}
    # with the fully-peeled trait, a packed tag without a peeled line is not annotated
    unknown = [name for name in tags
               if name not in peeled and not (fully_peeled and name in packed)]
    if unknown:
        peeled.update(_peel(gitdir, {name: refs[name] for name in unknown}))
    return refs, peeled, head


def _gitdir(path: Path) -> Path | None:
    dotgit = path / ".git"
    if dotgit.is_dir():
        return dotgit
    if dotgit.is_file():
        line = _read(dotgit).strip()
        if line.startswith("gitdir: "):
            return (path / line[len("gitdir: "):]).resolve()
        return None
    if (path / "HEAD").is_file() and (path / "objects").is_dir():
        return path
    return None


def _read(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _packed_refs(gitdir: Path) -> tuple[dict[str, str], dict[str, str], bool]:
    """``packed-refs``: name -> id, name -> peeled id for annotated tags, and whether the
    file is peeled (then a tag without a ``^`` line is known not to be annotated)."""
    refs: dict[str, str] = {}
    peeled: dict[str, str] = {}
    last: str | None = None
    text = _read(gitdir / "packed-refs")
    fully = text.startswith("# pack-refs with:") and "peeled" in text.partition("\n")[0]
    for line in text.splitlines():
        if line.startswith("^") and last is not None:
            peeled[last] = line[1:].strip()
        elif line and not line.startswith("#"):
            sha, _, name = line.partition(" ")
            if _SHA1.fullmatch(sha):
                refs[name.strip()] = sha
                last = name.strip()
    return refs, peeled, fully


def _follow(gitdir: Path, name: str, packed: dict[str, str]) -> str | None:
    """The id ``name`` points to, following symbolic refs; None if it does not exist."""
    for _ in range(_MAX_SYMREF_DEPTH):
        text = _read(gitdir / name).strip() if _safe(name) else ""
        if text.startswith("ref: "):
            name = text[5:].strip()
            continue
        if _SHA1.fullmatch(text):
            return text
        return packed.get(name)
    return None


def _loose(gitdir: Path, prefix: str, packed: dict[str, str]) -> dict[str, str]:
    """Loose refs named ``prefix`` or under it (a loose ref wins over a packed one)."""
    found: dict[str, str] = {}
    if not _safe(prefix.rstrip("/")):
        return found
    base = gitdir / prefix.rstrip("/")
    if base.is_file():
        sha = _follow(gitdir, prefix.rstrip("/"), packed)
        if sha is not None:
            found[prefix.rstrip("/")] = sha
        return found
    if not base.is_dir():
        return found
    for dirpath, _, files in os.walk(base):
        for file in files:
            name = Path(dirpath, file).relative_to(gitdir).as_posix()
            sha = _follow(gitdir, name, packed)
            if sha is not None:
                found[name] = sha
    return found


def _safe(name: str) -> bool:
    return bool(name) and not name.startswith("/") and ".." not in name.split("/")


def _peel(gitdir: Path, tags: dict[str, str]) -> dict[str, str]:
    """Peel annotated tags by reading their objects: name -> the commit they point to."""
    peeled: dict[str, str] = {}
    with closing(Repo(os.fspath(gitdir))) as repo:
        store = repo.object_store
        get: Callable[[ObjectID], object] = store.__getitem__
        for name, sha in tags.items():
            target = ObjectID(sha.encode("ascii"))
            for _ in range(_MAX_SYMREF_DEPTH):
                try:
                    obj = get(target)
                except KeyError:
                    break
                if not isinstance(obj, Tag):
                    break
                target = obj.object[1]
            if target.decode() != sha:
                peeled[name] = target.decode()
    return peeled
