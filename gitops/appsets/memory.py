"""What an ApplicationSet owned, remembered across restarts of ``gitops run``.

In a cluster the Application objects are a set's memory; ``gitops run -f`` has none but
this file: ``.gitops/appsets/NAMESPACE_NAME.owned.json`` beside the set's rollout state,
holding, per owned Application key, the parameter set it was rendered from — only the
parameters the template uses (a list element, a folder path, a cluster's name, server,
labels and ``k8s:`` target URL; a cluster Secret's ``config`` is never a parameter).
Never the rendered Application: a template may hold credentials (source or target
options, a URL with a password), which are taken from the template again when a record
is rendered at the next start. Written atomically (a rename), mode 0600, under the
folder's ``flock``, and only when the set's records change.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from gitops.appsets.spec import ApplicationSet
from gitops.errors import InputError

__all__ = ["OwnedFiles", "Records", "folder_lock", "write_private"]

#: owned Application key -> the (flat) parameters it was rendered from
Records = dict[str, dict[str, str]]


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold the ``flock`` of the state folder (created 0700 if missing)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically, the file mode 0600."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


class OwnedFiles:
    """Each set's owned Applications as a JSON file in one folder (``gitops run``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, appset: ApplicationSet) -> Path:
        return self.folder / f"{appset.namespace}_{appset.name}.owned.json"

    def read(self, appset: ApplicationSet) -> Records:
        """The records kept for ``appset`` (none when there is no file); InputError naming
        the file when it cannot be read or is not what this module writes."""
        path = self.path(appset)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise InputError(f"{path}: cannot read what the ApplicationSet owned: "
                             f"{exc.strerror}") from None
        try:
            data = json.loads(text)
            owned = data["applications"]
            if data.get("applicationSet") != appset.key or not isinstance(owned, Mapping):
                raise ValueError("not this set's")
            return {str(key): {str(k): str(v) for k, v in params.items()}
                    for key, params in owned.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{path}: corrupt record of what the ApplicationSet owned: "
                             f"{type(exc).__name__}") from None

    def write(self, appset: ApplicationSet, records: Mapping[str, Mapping[str, str]]) -> None:
        """Keep ``records`` as what ``appset`` owns (under the folder's lock)."""
        document = {"applicationSet": appset.key,
                    "applications": {k: dict(sorted(v.items())) for k, v in records.items()}}
        with folder_lock(self.folder):
            write_private(self.path(appset), json.dumps(document, indent=1, sort_keys=True))

    def forget(self, appset: ApplicationSet) -> None:
        """Delete the records of a set that gave up its Applications (under the lock)."""
        with folder_lock(self.folder), contextlib.suppress(FileNotFoundError):
            self.path(appset).unlink()
