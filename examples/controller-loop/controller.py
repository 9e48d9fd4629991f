"""A controller in plain Python: keep several applications reconciled, log every event,
count everything in Prometheus metrics. No framework: gitops.aio, asyncio, prometheus-client.

    python examples/controller-loop/controller.py --metrics-port 9100 \
        --app shop examples/app dir:out/shop --app web 'git+https://host/web.git' k8s:
"""

import argparse
import asyncio
import logging

import prometheus_client as prom

import gitops.aio

SYNCS = prom.Counter("controller_syncs_total", "Syncs by outcome", ["app", "outcome"])
CHANGES = prom.Counter("controller_changes_total", "Changes by action", ["app", "action"])
EVENTS = prom.Counter("controller_events_total", "Engine events by reason", ["app", "reason"])
SECONDS = prom.Histogram("controller_sync_duration_seconds", "Sync durations", ["app"])


async def control(name: str, source: str, target: str, args: argparse.Namespace) -> None:
    log = logging.getLogger(f"controller.{name}")

    def on_event(event: gitops.Event) -> None:  # called in the event loop, never blocks it
        EVENTS.labels(name, event.reason).inc()
        log.log(logging.WARNING if event.warning else logging.INFO, "%s: %s", event.reason,
                event.message)

    opening = gitops.aio.Reconciler.open(source, target, name=name, prune=True)  # off the loop
    async with await opening as reconciler:
        reconciler.subscribe(on_event)
        async for result in reconciler.run(args.interval, iterations=args.iterations):
            SYNCS.labels(name, "succeeded" if result.succeeded else "failed").inc()
            SECONDS.labels(name).observe(result.duration)
            for r in result.results:
                CHANGES.labels(name, r.change.action).inc()


async def main() -> None:
    parser = argparse.ArgumentParser(description="Keep applications reconciled.")
    parser.add_argument("--app", nargs=3, action="append", required=True,
                        metavar=("NAME", "SOURCE", "TARGET"))
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between syncs")
    parser.add_argument("--iterations", type=int, help="stop after N syncs of each app")
    parser.add_argument("--metrics-port", type=int, help="serve /metrics on this port")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    logging.getLogger("gitops.engine").setLevel(logging.ERROR)  # events: logged above, per app
    if args.metrics_port is not None:
        prom.start_http_server(args.metrics_port)
    await asyncio.gather(*(control(name, src, dst, args) for name, src, dst in args.app))
    if args.iterations is not None:  # a finite run ends with what it counted
        print(prom.generate_latest().decode(), end="")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except gitops.GitopsError as exc:  # a bad URL or option: one line, not a traceback
        raise SystemExit(f"controller: {exc}") from None
