"""The one options model of the ``jsonl:`` target, filled from URL query and keywords alike.

``jsonl:live.jsonl?fsync=false&lock-timeout=5`` and
``open_target("jsonl:live.jsonl", fsync=False, lock_timeout=5)`` give the same options:
gitops validates both together, once (keywords win), and a misspelt name is an
InvalidURLError naming the URL, never silently ignored.
"""

from __future__ import annotations

from gitops.options import PluginOptions
from pydantic import Field

__all__ = ["JsonlOptions"]


class JsonlOptions(PluginOptions):
    """Options of :class:`~gitops_plugin_example.target.JsonlTarget`."""

    #: make every write durable (fsync the file and its folder) before it returns
    fsync: bool = True
    #: seconds ``lock()`` waits for another sync of the same file before a ConflictError
    lock_timeout: float = Field(default=0.0, ge=0, le=3600, alias="lock-timeout")
