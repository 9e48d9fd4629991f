"""Git sources (``git+file://``, ``git+git://``, ``git+http(s)://``, ``git+ssh://``) on dulwich.

The package splits one job per module: ``url`` (the URL grammar), ``credentials``,
``transport`` and ``ssh`` (talking to remotes), ``translate`` (their errors into ours),
``refs`` (which commit a URL means), ``mirror`` (the local cache repository),
``checkout`` (writing a tree), ``verify`` (OpenPGP signatures), ``submodules``,
``records`` and ``bounds`` (the cache's bookkeeping and limits), and ``source``, the
:class:`GitSource` that ties them together. Only :class:`GitSource` is public.
"""

from gitops.sources.git.source import GitSource

__all__ = ["GitSource"]
