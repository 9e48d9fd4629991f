"""The GitOps operator: keep declared applications converged, continuously.

Build blocks, each usable by import:

- :mod:`gitops.operator.status`: an application's status and sync history;
- :mod:`gitops.operator.reconcile`: one application reconciled once
  (:class:`~gitops.operator.reconcile.AppReconciler`);
- :mod:`gitops.operator.scheduler`: many applications kept converged by a worker pool
  (:class:`~gitops.operator.scheduler.Operator`);
- :mod:`gitops.operator.files` and :mod:`gitops.operator.commands`: applications declared
  in files, status in their targets, and what ``gitops status``/``sync``/``rollback`` do.

::

    from gitops.operator import Operator, TargetStatusStore, ApplicationFiles

    operator = Operator(TargetStatusStore(), workers=4)
    operator.set_applications(ApplicationFiles(["apps.yaml"]).load())
    operator.start()
"""

from gitops.operator.files import ApplicationFiles, TargetStatusStore
from gitops.operator.reconcile import AppReconciler, ReconcileOutcome
from gitops.operator.scheduler import Operator
from gitops.operator.status import AppStatus, Condition, StatusStore, SyncRecord

__all__ = [
    "AppReconciler",
    "AppStatus",
    "ApplicationFiles",
    "Condition",
    "Operator",
    "ReconcileOutcome",
    "StatusStore",
    "SyncRecord",
    "TargetStatusStore",
]
