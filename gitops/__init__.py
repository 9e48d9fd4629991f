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
    SyncInterrupted,
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
    DriftMode,
    DriftPolicy,
    Event,
    HealthStatus,
    IgnoreDifference,
    Inventory,
    ListType,
    ListTypes,
    Outcome,
    Plan,
    ReconcilerOptions,
    RenderContext,
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
    "DriftMode",
    "DriftPolicy",
    "EmptySourceError",
    "Event",
    "GitopsError",
    "HealthStatus",
    "IgnoreDifference",
    "InputError",
    "InvalidURLError",
    "Inventory",
    "ListType",
    "ListTypes",
    "ManifestError",
    "NotSupportedError",
    "Outcome",
    "Plan",
    "PluginError",
    "PluginInfo",
    "Reconciler",
    "ReconcilerOptions",
    "RenderContext",
    "Renderer",
    "Resource",
    "ResourceKey",
    "ResourceResult",
    "RevisionNotFoundError",
    "Source",
    "SourceAuthenticationError",
    "SourceError",
    "SyncInterrupted",
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
