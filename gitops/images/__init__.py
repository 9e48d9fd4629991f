"""Image update automation: scan image repositories, choose tags by policy, write them to Git.

* :mod:`gitops.images.spec`: the ``ImagePolicy`` and ``ImageUpdateAutomation`` documents.
* :mod:`gitops.images.scan`: list a repository's tags (OCI Distribution API, cached).
* :mod:`gitops.images.policy`: Flux's semver / alphabetical / numerical policies.
* :mod:`gitops.images.latest`: a policy's latest image (scan + policy + optional digest).

See docs/images.md. Submodules are imported on first use: importing this package opens
nothing and needs no registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gitops.images.latest import LatestImage, latest_image
    from gitops.images.policy import select_tag
    from gitops.images.scan import ScanResult, TagCache, scan_tags, tag_digest
    from gitops.images.spec import ImagePolicy, ImageUpdateAutomation

__all__ = [
    "ImagePolicy",
    "ImageUpdateAutomation",
    "LatestImage",
    "ScanResult",
    "TagCache",
    "latest_image",
    "scan_tags",
    "select_tag",
    "tag_digest",
]

_WHERE = {
    "ImagePolicy": "spec", "ImageUpdateAutomation": "spec", "LatestImage": "latest",
    "latest_image": "latest", "select_tag": "policy", "ScanResult": "scan",
    "TagCache": "scan", "scan_tags": "scan", "tag_digest": "scan",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'gitops.images' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"gitops.images.{_WHERE[name]}"), name)
