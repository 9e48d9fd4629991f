"""``gitops controller``, ``gitops crds`` and ``gitops install``.

``gitops controller`` runs in a cluster (or from a kubeconfig): it watches
``Application`` objects and keeps each converged, writing its status subresource and
Events. With ``--leader-elect`` only the replica holding the Lease reconciles (a
replica that loses it exits, as client-go's controllers do, and is restarted); with
``--shards N`` applications are split by a stable hash of ``namespace/name`` and each
replica reconciles the shards whose Leases it holds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from typing import Any

from gitops.apps.durations import parse_duration
from gitops.errors import InputError
from gitops.operator.cli import EXIT_OK, Out, _signals
from gitops.operator.cluster import ClusterStatusStore, Controller
from gitops.operator.crd import all_crds, crds_yaml
from gitops.operator.install import install_manifests, install_yaml
from gitops.operator.kubeapi import OperatorAPI
from gitops.operator.leader import LeaderElector, ShardElector, default_identity, shard_of
from gitops.operator.runtime import Runtime, configure

__all__ = ["COMMANDS"]

log = logging.getLogger("gitops.operator")

EXIT_LOST_LEASE = 3


def _print(documents: list[dict[str, Any]], yaml_text: str, args: argparse.Namespace,
           out: Out) -> int:
    """YAML documents, or with ``-o json`` one ``v1`` List (``kubectl apply -f -`` takes both)."""
    if args.output == "json":
        out.write(json.dumps({"apiVersion": "v1", "kind": "List", "items": documents},
                             indent=2) + "\n")
    else:
        out.write(yaml_text)
    return EXIT_OK


def cmd_crds(args: argparse.Namespace, out: Out) -> int:
    return _print(all_crds(), crds_yaml(), args, out)


def cmd_install(args: argparse.Namespace, out: Out) -> int:
    kwargs: dict[str, Any] = {"namespace": args.namespace, "webhook_secret": args.webhook_secret}
    if args.image:
        kwargs["image"] = args.image
    try:
        return _print(install_manifests(**kwargs), install_yaml(**kwargs), args, out)
    except ValueError as exc:
        raise InputError(f"gitops install: {exc}") from None


def cmd_controller(args: argparse.Namespace, out: Out) -> int:
    configure(args)
    if args.shards < 0:
        raise ValueError("--shards must not be negative")
    try:
        lease = parse_duration(args.lease_duration) / 1e9
    except ValueError as exc:
        raise InputError(f"--lease-duration: {exc}") from None
    if lease < 1:
        raise InputError("--lease-duration must be at least 1s")
    identity = args.identity or os.environ.get("POD_NAME") or default_identity()
    api = OperatorAPI.from_kubeconfig(args.kubeconfig, args.context)
    store = ClusterStatusStore(api)
    stop = threading.Event()
    lost = threading.Event()
    renew, retry = lease * 2 / 3, max(lease / 7.5, 0.2)  # client-go's 15s/10s/2s ratios
    with _signals(stop), Runtime(args, store) as runtime:
        owned: list[frozenset[int]] = [frozenset()]  # swapped whole: readers never see it half-done
        shards = args.shards
        leading = threading.Event()

        def accept(key: str) -> bool:
            if args.leader_elect and not shards and not leading.is_set():
                return False  # a standby watches (to pass webhooks on) but reconciles nothing
            return not shards or shard_of(key, shards) in owned[0]

        controller = Controller(api, store, runtime.operator, namespace=args.namespace,
                                kubeconfig=args.kubeconfig, context=args.context,
                                accept=accept)
        runtime.route_to(controller)
        from gitops.images.controller import run_in_cluster  # image automation, same gating

        run_in_cluster(api, runtime, stop, namespace=args.namespace, accept=accept)
        runtime.start()
        from gitops.appsets.cluster import ClusterSets  # ApplicationSet objects
        sets = ClusterSets(api, store, runtime.operator, namespace=args.namespace,
                           kubeconfig=args.kubeconfig, context=args.context, accept=accept,
                           notifier=runtime.notifier)
        sets.start(stop)
        elector: ShardElector | LeaderElector | None = None
        if shards:
            def changed(now_owned: frozenset[int]) -> None:
                owned[0] = frozenset(now_owned)
                log.info("shards held: %s", sorted(now_owned) or "none",
                         extra={"reason": "ShardsChanged"})
                controller.refilter()
                sets.refilter()

            elector = ShardElector(
                api, namespace=args.lease_namespace, shards=shards, identity=identity,
                on_change=changed, lease_duration=lease, renew_deadline=renew,
                retry_period=retry)
        elif args.leader_elect:
            def started() -> None:
                log.info("%s leads", identity, extra={"reason": "LeaderElected"})
                leading.set()
                controller.refilter()
                sets.refilter()

            def stopped() -> None:
                if leading.is_set() and not stop.is_set():  # lost, not handed back
                    log.error("lost the Lease; exiting", extra={"reason": "LeaderLost"})
                    lost.set()
                    stop.set()

            elector = LeaderElector(api, namespace=args.lease_namespace, identity=identity,
                                    on_started=started, on_stopped=stopped,
                                    lease_duration=lease, renew_deadline=renew,
                                    retry_period=retry)
        if elector is not None:
            elector.start()
        try:
            controller.run(stop)
        finally:
            # drain first: the Lease is handed over only once no sync of ours is in flight
            sets.close()
            runtime.operator.stop()
            if isinstance(elector, LeaderElector):
                elector.stop(release=not lost.is_set())
            elif elector is not None:
                elector.stop()
        log.info("stopping: letting the syncs in flight finish")
    api.close()
    if lost.is_set():
        print("gitops: error: lost the leader Lease", file=sys.stderr)
        return EXIT_LOST_LEASE
    return EXIT_OK


COMMANDS = {"controller": cmd_controller, "crds": cmd_crds, "install": cmd_install}
