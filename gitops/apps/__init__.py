"""Declared applications (``gitops.dev/v1alpha1`` ``Application``): the operator's input.

::

    from gitops.apps import load_applications
    import gitops

    for app in load_applications("apps.yaml"):
        with gitops.open_source(app.spec.source.url, **app.source_options) as src, \\
             gitops.open_target(app.spec.target.url, **app.target_options) as dst:
            gitops.Reconciler(src, dst, **app.reconciler_kwargs()).sync()
"""

from gitops.apps.durations import Duration, format_duration, parse_duration
from gitops.apps.load import check_dependencies, load_applications
from gitops.apps.spec import (
    API_VERSION,
    KIND,
    Application,
    ApplicationSpec,
    Metadata,
    RetrySpec,
    SourceSpec,
    TargetSpec,
    WaitSpec,
    application_json_schema,
    inventory_name,
    split_ref,
)

__all__ = [
    "API_VERSION",
    "KIND",
    "Application",
    "ApplicationSpec",
    "Duration",
    "Metadata",
    "RetrySpec",
    "SourceSpec",
    "TargetSpec",
    "WaitSpec",
    "application_json_schema",
    "check_dependencies",
    "format_duration",
    "inventory_name",
    "load_applications",
    "parse_duration",
    "split_ref",
]
