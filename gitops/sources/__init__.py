"""Source plugins: where desired state comes from (directory, Git, OCI)."""

from gitops.sources.base import Source

__all__ = ["Source"]
