"""Live objects for the differ tests, made by the emulator's server-side apply (no server).

``managedFields`` as a real API server records them and defaults filled in, so the
differ's managed mode is tested against what it will read from a cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from gitops.model import split_api_version
from gitops.testing.kube import apply as ssa
from gitops.testing.kube.defaults import apply_defaults

NOW = "2024-05-01T10:00:00Z"


def server_apply(
    live: dict[str, Any] | None, config: dict[str, Any], manager: str = "gitops",
    *, has_status: bool | None = None,
) -> dict[str, Any]:
    """What the API server holds after ``manager`` server-side applies ``config`` (forced).

    ``has_status`` (whether the kind has a status subresource) defaults to Deployments only.
    """
    status = config["kind"] == "Deployment" if has_status is None else has_status
    obj = ssa.apply(copy.deepcopy(live), copy.deepcopy(config), manager=manager, force=True,
                    api_version=config["apiVersion"], now=NOW, has_status=status)
    obj["apiVersion"], obj["kind"] = config["apiVersion"], config["kind"]
    apply_defaults(split_api_version(config["apiVersion"])[0], config["kind"], obj, False)
    obj["metadata"].update(uid="u-1", resourceVersion="7", creationTimestamp=NOW)
    return obj


def server_update(
    live: dict[str, Any], change: Callable[[dict[str, Any]], Any], manager: str
) -> dict[str, Any]:
    """What the API server holds after ``manager`` edits ``live`` (kubectl edit/set/patch)."""
    new = copy.deepcopy(live)
    change(new)
    ssa.track_update(live, new, manager=manager, api_version=live["apiVersion"], now=NOW,
                     has_status=live["kind"] == "Deployment")
    return new
