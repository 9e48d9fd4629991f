"""OCI artifact source and push: Flux-compatible artifacts in any container registry.

``oci://HOST[:PORT]/REPO[:TAG|@sha256:DIGEST][#path=SUBDIR&semver=RANGE]`` (docs/oci.md).
One job per module: :mod:`.reference` parses URLs, :mod:`.options` validates options,
:mod:`.auth` finds credentials, :mod:`.session` speaks HTTP (TLS, auth challenges, error
translation), :mod:`.client` makes the Distribution API calls, :mod:`.manifest` reads and
builds manifests, :mod:`.verify` hashes and gunzips a download, :mod:`.extract` unpacks it
safely, :mod:`.push` publishes, :mod:`.source` is the :class:`Source` plugin. Nothing in
this package may log, raise or return a credential.
"""

from gitops.sources.oci.options import FLUX_CONFIG, FLUX_CONTENT, OCIOptions, OCISourceOptions
from gitops.sources.oci.push import PushResult, build_layer, push
from gitops.sources.oci.reference import OCIReference, parse_oci_url
from gitops.sources.oci.session import RegistryUnavailableError
from gitops.sources.oci.source import OCISource

__all__ = [
    "FLUX_CONFIG",
    "FLUX_CONTENT",
    "OCIOptions",
    "OCIReference",
    "OCISource",
    "OCISourceOptions",
    "PushResult",
    "RegistryUnavailableError",
    "build_layer",
    "parse_oci_url",
    "push",
]
