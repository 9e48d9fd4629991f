"""A policy's latest image: scan its repository, apply the policy, optionally ask the digest.

The one place that turns an :class:`~gitops.images.spec.ImagePolicy` into a
:class:`LatestImage`; the Git updater and the operator both use it. Errors name the
policy and the image, never a credential.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitops.errors import InputError, SourceError
from gitops.images.policy import select_tag
from gitops.images.scan import ImageRepository, TagCache, scan_tags
from gitops.images.spec import ImagePolicy

__all__ = ["LatestImage", "NoMatchingTagError", "latest_image"]


class NoMatchingTagError(InputError):
    """No tag of the repository satisfies the policy (and its filter)."""

    def __init__(self, policy: str, image: str, reason: str) -> None:
        self.policy = policy
        self.image = image
        self.reason = reason
        super().__init__(f"ImagePolicy {policy}: {reason}")


@dataclass(frozen=True)
class LatestImage:
    """What a policy chose: ``policy`` (``NS:NAME``), ``image`` (``HOST/REPO``), ``tag`` and,
    when asked for, ``digest`` (``sha256:…``)."""

    policy: str
    image: str
    tag: str
    digest: str | None = None

    @property
    def reference(self) -> str:
        """``image:tag``, as a Deployment's ``image:`` field holds it."""
        return f"{self.image}:{self.tag}"


def latest_image(
    policy: ImagePolicy,
    *,
    with_digest: bool = False,
    cache: TagCache | None = None,
    page_size: int | None = None,
) -> LatestImage:
    """The tag ``policy`` chooses now (and its digest when ``with_digest``).

    The repository is scanned with the policy's ``exclusionList`` and ``options`` (through
    ``cache`` when given). Raises :class:`NoMatchingTagError` naming the policy when no tag
    fits; the scan's errors (SourceError, AuthenticationError) prefixed with the policy.
    """
    spec = policy.spec
    extra = {"page_size": page_size} if page_size is not None else {}
    try:
        with ImageRepository(spec.image, **extra, **spec.options) as repo:
            result = scan_tags(spec.image, exclude=spec.exclusion_list, cache=cache,
                               repository=repo)
            tag = select_tag(result.tags, spec.policy, spec.filter_tags)
            if tag is None:
                raise NoMatchingTagError(
                    policy.ref, spec.image,
                    f"no tag of {repo.display} matches {spec.policy.describe()}"
                    + (" after filterTags" if spec.filter_tags is not None else "")
                    + f" ({len(result.tags)} tags considered)",
                )
            digest = repo.digest(tag) if with_digest else None
    except SourceError as exc:
        raise type(exc)(exc.url, f"ImagePolicy {policy.ref}: {exc.reason}") from exc
    return LatestImage(policy.ref, spec.image, tag, digest)
