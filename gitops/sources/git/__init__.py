"""Git sources (``git+file://``, ``git+git://``, ``git+http(s)://``, ``git+ssh://``) on dulwich.

The package splits one job per module: ``url`` (the URL grammar), ``options`` (the one
options model), ``credentials``, ``transport``, ``localrefs`` and ``ssh`` (talking to
remotes; a local repository's refs read from its files), ``translate`` (their errors
into ours), ``refs`` (which commit a URL means), ``mirror`` (the local cache
repository), ``checkout`` (writing a tree), ``verify`` (OpenPGP signatures),
``submodules``, ``records`` and ``bounds`` (the cache's bookkeeping and limits), and
``source``, the :class:`GitSource` that ties them together. :class:`GitSource` and its
:class:`GitOptions` are public.
"""

from gitops.sources.git.options import GitOptions
from gitops.sources.git.source import GitSource

__all__ = ["GitOptions", "GitSource"]
