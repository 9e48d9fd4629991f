"""What ``gitops run`` and ``gitops controller`` share: the scheduler with its metrics,
notifications, HTTP endpoints (``/metrics``, ``/healthz``, ``/readyz``) and webhooks.

:class:`Runtime` builds them from the command-line flags
(:func:`gitops.operator.cli.add_runtime_options`), starts the servers before the
scheduler (a taken port fails at once, before anything is reconciled) and stops them
all in the reverse order, letting the syncs in flight finish.
"""

from __future__ import annotations

import argparse
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from gitops.apps.load import Declarations
from gitops.errors import InputError
from gitops.operator.httpserver import Server, operator_routes, serve
from gitops.operator.logs import configure_logging
from gitops.operator.metrics import OperatorMetrics
from gitops.operator.notify import Notifier
from gitops.operator.scheduler import Operator
from gitops.operator.status import StatusStore
from gitops.operator.webhooks import PushEvent, pushed_to, read_secret_file, webhook_routes

if TYPE_CHECKING:
    from gitops.images.automation import ImageAutomation

__all__ = ["LocalRouter", "Router", "Runtime", "configure"]

log = logging.getLogger("gitops.operator")


def configure(args: argparse.Namespace) -> None:
    """Logging as ``--log-format`` and ``--log-level`` say (replacing the CLI's default).

    The engine's per-resource steps (``Planned``, ``Applied``…) are logged only at
    ``debug``: a thousand applications would otherwise log each plan every interval.
    Its warnings and the operator's own lines (with ``app``, ``revision``, ``reason``)
    are kept.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    configure_logging(args.log_format, args.log_level)
    if args.log_level != "debug":
        logging.getLogger("gitops.engine").setLevel(logging.WARNING)


class Router(Protocol):
    """Where webhooks go: which applications a push concerns, and how to reconcile one."""

    def matching(self, event: PushEvent) -> list[str]: ...
    def request(self, key: str) -> bool: ...


class LocalRouter:
    """Webhooks for the applications this process's scheduler runs (``gitops run``)."""

    def __init__(self, operator: Operator) -> None:
        self._operator = operator

    def matching(self, event: PushEvent) -> list[str]:
        """The applications whose git source is the pushed repository and branch (or tag)."""
        return sorted(
            key for key, app in self._operator.applications().items()
            if pushed_to(event, app.spec.source.url, app.spec.source.options.get("semver"))
        )

    def request(self, key: str) -> bool:
        return self._operator.trigger(key, "webhook")


class Runtime:
    """The scheduler and its servers, built from the command line; a context manager."""

    def __init__(self, args: argparse.Namespace, store: StatusStore, *, workers: int = 4) -> None:
        self._args = args
        self.metrics = OperatorMetrics()
        self.notifier = Notifier(args.notify) if args.notify else None
        self.operator = Operator(store, workers=getattr(args, "workers", workers),
                                 metrics=self.metrics, notifier=self.notifier)
        self.servers: list[Server] = []
        self._secret: bytes | None = None
        if args.webhook_addr:
            if not args.webhook_secret_file:
                raise InputError("--webhook-addr needs --webhook-secret-file PATH")
            self._secret = read_secret_file(args.webhook_secret_file)
        self._started = False
        self._router: Router = LocalRouter(self.operator)
        self.images: ImageAutomation | None = None  # image automation, once declared
        self._appsets: Any = None  # gitops.appsets.controller.SetController, once a set is declared

    def ready(self) -> bool:
        """Serving: the scheduler runs (``/readyz``)."""
        return self._started

    def start(self) -> None:
        """Start the HTTP servers, then the scheduler."""
        args = self._args
        if args.metrics_addr and args.metrics_addr != "off":
            self.servers.append(serve(args.metrics_addr,
                                      operator_routes(self.metrics, self.ready), name="metrics"))
            log.info("metrics on %s", self.servers[-1].url)
        if self._secret is not None:
            routes = webhook_routes(self._secret, on_push=self._on_push, on_app=self._on_app)
            self.servers.append(serve(args.webhook_addr, routes, name="webhooks"))
            log.info("webhooks on %s", self.servers[-1].url)
        self.operator.start()
        self._started = True

    def apply(self, declared: Declarations) -> None:
        """Keep what the files declare: the applications (added, changed, removed) and
        the ones application sets generate, and the image automation
        (:func:`gitops.images.automation.keep_images`)."""
        if self._appsets is None and declared.of("ApplicationSet"):
            from gitops.appsets.controller import SetController
            self._appsets = SetController.for_runtime(self, self._args, self.notifier)
        if self._appsets is not None:
            self._appsets.apply(declared.applications, declared.of("ApplicationSet"))
        else:
            self.operator.set_applications(declared.applications)
        from gitops.images.automation import keep_images

        self.images = keep_images(self, declared)

    def route_to(self, router: Router) -> None:
        """Send webhooks through ``router`` instead of this process's scheduler (a
        controller, which passes on those of applications other replicas run)."""
        self._router = router

    def push_received(self, event: PushEvent) -> int:
        """Reconcile the applications ``event`` pushed to (as a webhook does); how many."""
        return self._on_push(event)

    def _on_push(self, event: PushEvent) -> int:
        keys = self._router.matching(event)
        for key in keys:
            self._router.request(key)
        if self._appsets is not None:
            keys = [*keys, *self._appsets.pushed(event)]
        log.info("push to %s (%s): %d applications triggered", ", ".join(sorted(
            event.repositories)), event.branch or event.tag or "?", len(keys),
            extra={"reason": "WebhookPush", "revision": event.revision})
        return len(keys)

    def _on_app(self, key: str) -> bool:
        return self._router.request(key)

    def close(self) -> None:
        """Stop the scheduler (syncs in flight finish), the servers and the notifier."""
        self._started = False
        if self.images is not None:
            self.images.stop()
        if self._appsets is not None:
            self._appsets.close()
        self.operator.stop()
        for server in reversed(self.servers):
            server.close()
        self.servers.clear()
        if self.notifier is not None:
            self.notifier.close(5.0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
