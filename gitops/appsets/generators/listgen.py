"""The ``list`` generator: ``elements: [{...}, ...]``, one parameter set per element, in order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from gitops.appsets.generators.base import ConfigModel, Generator, GeneratorContext, ParameterSet

__all__ = ["ListGenerator"]


class ListConfig(ConfigModel):
    """``elements``: mappings of parameters (nested mappings become dotted names)."""

    elements: list[dict[str, Any]] = Field(default_factory=list)


class ListGenerator(Generator):
    """Argo CD's List generator: each element is a parameter set."""

    name = "list"

    def generate(self, config: Mapping[str, Any], context: GeneratorContext) -> list[ParameterSet]:
        return [dict(element) for element in context.validate(ListConfig, config).elements]
