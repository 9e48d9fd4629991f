"""gitops: a pure-Python GitOps reconciliation SDK.

Import what you need from here; submodules are importable but not promised::

    import gitops

    with gitops.open_source("examples/app") as src, gitops.open_target("dir:out") as dst:
        result = gitops.Reconciler(src, dst, prune=True).sync()
"""

from gitops.differs.base import Differ
from gitops.engine import Reconciler
from gitops.errors import (
    ApplyError,
    AuthenticationError,
    ConflictError,
    EmptySourceError,
    GitopsError,
    InputError,
    InvalidURLError,
    ManifestError,
    NotSupportedError,
    PluginError,
    RevisionNotFoundError,
    SourceAuthenticationError,
    SourceError,
    TargetAuthenticationError,
    TargetError,
    TransientError,
    UnreachableError,
    VerificationError,
)
from gitops.model import (
    Action,
    Artifact,
    Change,
    Diff,
    Event,
    HealthStatus,
    Inventory,
    Outcome,
    Plan,
    ReconcilerOptions,
    Resource,
    ResourceKey,
    ResourceResult,
    SyncResult,
)
from gitops.plugins import (
    PluginInfo,
    list_plugins,
    open_differ,
    open_renderer,
    open_source,
    open_target,
    register,
)
from gitops.renderers.base import Renderer
from gitops.sources.base import Source
from gitops.targets.base import Target

__version__ = "0.1.0"

__all__ = [
    "Action",
    "ApplyError",
    "Artifact",
    "AuthenticationError",
    "Change",
    "ConflictError",
    "Diff",
    "Differ",
    "EmptySourceError",
    "Event",
    "GitopsError",
    "HealthStatus",
    "InputError",
    "InvalidURLError",
    "Inventory",
    "ManifestError",
    "NotSupportedError",
    "Outcome",
    "Plan",
    "PluginError",
    "PluginInfo",
    "Reconciler",
    "ReconcilerOptions",
    "Renderer",
    "Resource",
    "ResourceKey",
    "ResourceResult",
    "RevisionNotFoundError",
    "Source",
    "SourceAuthenticationError",
    "SourceError",
    "SyncResult",
    "Target",
    "TargetAuthenticationError",
    "TargetError",
    "TransientError",
    "UnreachableError",
    "VerificationError",
    "__version__",
    "list_plugins",
    "open_differ",
    "open_renderer",
    "open_source",
    "open_target",
    "register",
]
