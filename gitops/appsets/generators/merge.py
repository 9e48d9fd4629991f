"""The ``merge`` generator: the first generator's sets, overridden by later ones by key.

As Argo CD: ``mergeKeys`` names the parameters that identify a set; a set of a later
generator with the same values for every merge key overrides (and adds to) the base
set's parameters, later generators winning. Sets of later generators matching no base
set are dropped. Every set must have every merge key (an error names the one missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from gitops.appsets.generators.base import ConfigModel, Generator, GeneratorContext, ParameterSet
from gitops.appsets.spec import GeneratorList
from gitops.appsets.template import flatten

__all__ = ["MergeGenerator"]


class MergeConfig(ConfigModel):
    """``mergeKeys`` and ``generators`` (two or more; the first is the base)."""

    merge_keys: list[str] = Field(alias="mergeKeys", min_length=1)
    generators: GeneratorList = Field(min_length=2)


class MergeGenerator(Generator):
    """Argo CD's Merge generator."""

    name = "merge"

    def generate(self, config: Mapping[str, Any], context: GeneratorContext) -> list[ParameterSet]:
        model = context.validate(MergeConfig, config)
        base_path = f"{context.field_path}.generators"
        keys = model.merge_keys

        def identity(params: Mapping[str, str], index: int) -> tuple[str, ...]:
            missing = [key for key in keys if key not in params]
            if missing:
                raise context.error(f"generators[{index}] gives a parameter set without merge "
                                    f"key {missing[0]!r}")
            return tuple(params[key] for key in keys)

        sets = [flatten(p) for p in context.generate(model.generators[0], f"{base_path}[0]")]
        for index, entry in enumerate(model.generators[1:], start=1):
            overrides: dict[tuple[str, ...], dict[str, str]] = {}
            for params in context.generate(entry, f"{base_path}[{index}]"):
                flat = flatten(params)
                overrides[identity(flat, index)] = flat  # later sets of one generator win too
            sets = [{**params, **overrides.get(identity(params, 0), {})} for params in sets]
        return list(sets)
