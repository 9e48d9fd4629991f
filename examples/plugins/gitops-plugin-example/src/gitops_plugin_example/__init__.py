"""A worked third-party gitops plugin: the ``jsonl:`` target and the ``jsonl`` renderer.

Registered through gitops' entry points (see this distribution's ``pyproject.toml``);
nothing here is imported until gitops first needs the plugin.
"""

from gitops_plugin_example.options import JsonlOptions
from gitops_plugin_example.renderer import JsonlRenderer
from gitops_plugin_example.target import JsonlTarget

__all__ = ["JsonlOptions", "JsonlRenderer", "JsonlTarget"]
