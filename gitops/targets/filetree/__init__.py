"""The file-tree target (``dir:PATH``): live state as one YAML file per resource.

Layout under the root (every path is derived from the :class:`ResourceKey` alone)::

    <namespace>/<Kind>[.<group>]/<name>.yaml    namespaced objects
    _cluster/<Kind>[.<group>]/<name>.yaml       cluster-scoped objects
    .gitops/inventory/<name>.json               inventories (``Inventory.to_dict()``)
    .gitops/dirs.json                           ledger: the folders this target created
    .gitops/lock                                the sync lock (holder's pid, host, inventory)

The folder of a kind is ``ResourceKey.group_kind`` with the kind's case kept
(``web/Deployment.apps/frontend.yaml``): lowercasing would make ``Foo`` and ``foo``
collide and the mapping irreversible. Characters unsafe in a file name (``/``, ``%``,
control characters, a leading ``.``; also ``.`` inside a kind and a leading ``_`` in a
namespace) are percent-encoded, so distinct keys map to distinct paths, no resource
maps into ``.gitops`` or ``_cluster``, and :func:`key_for_path` inverts
:func:`path_for_key`. A name too long for one file name (over 255 bytes) is split
into folders ending in ``%`` (``a...%/b...%/c.yaml``). On a case-insensitive file
system, keys that differ only by case share a file: use a case-sensitive one.

Writes are atomic (temporary file ``.gitops-tmp-<pid>-<host>-<random>`` in the same
folder, then ``os.replace``) and walk folders with ``O_NOFOLLOW``. The target never
follows a symbolic link when writing or deleting, never writes or deletes outside the
root, never touches a file it did not derive from a key (or its own ``.gitops`` folder
and temporary files), and never removes a folder it did not create and record in its
ledger. (The ledger recognizes a folder by its inode: a folder a user makes in place of
one of ours, after ours was removed, is taken for ours only if the file system hands it
the same inode number.) Reading never creates anything: a missing root reads as empty.

Concurrency: one lock per root (shared by every instance in the process) serializes
``apply`` and ``delete``, so folder creation, folder removal and the ledger stay
consistent; reads need no lock (files are replaced atomically). Between processes,
:meth:`FileTreeTarget.lock` (an ``flock`` the engine holds for a whole sync) lets one
sync at a time write the tree.

Modules: :mod:`.paths` (key <-> path), :mod:`.fs` (no-follow file-system primitives,
temporary files), :mod:`.statcache` (live reads that skip untouched files),
:mod:`.locking` (the sync lock), :mod:`.options` (options and URL), :mod:`.target`.
"""

from __future__ import annotations

from gitops.targets.filetree.options import FileTreeOptions, parse_url
from gitops.targets.filetree.paths import key_for_path, path_for_key
from gitops.targets.filetree.target import FileTreeTarget

__all__ = ["FileTreeOptions", "FileTreeTarget", "key_for_path", "parse_url", "path_for_key"]
