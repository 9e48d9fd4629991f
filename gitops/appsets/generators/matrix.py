"""The ``matrix`` generator: the cartesian product of exactly two child generators.

As Argo CD: each parameter set of the first is combined with each of the second; the
second's config may use the first's parameters (``{{path.basename}}``), then it is
evaluated once per parameter set of the first. A parameter both give must agree (else
an error naming it), as Argo CD refuses conflicting values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from gitops.appsets.generators.base import ConfigModel, Generator, GeneratorContext, ParameterSet
from gitops.appsets.spec import GeneratorList
from gitops.appsets.template import PLACEHOLDER, flatten, render

__all__ = ["MatrixGenerator"]


class MatrixConfig(ConfigModel):
    """``generators``: exactly two ``{name: config}`` entries."""

    generators: GeneratorList = Field(min_length=2, max_length=2)


def _uses_parameters(value: Any) -> bool:
    if isinstance(value, str):
        return PLACEHOLDER.search(value) is not None
    if isinstance(value, Mapping):
        return any(_uses_parameters(item) for item in value.values())
    if isinstance(value, list):
        return any(_uses_parameters(item) for item in value)
    return False


class MatrixGenerator(Generator):
    """Every combination of the two children's parameter sets, first-major order."""

    name = "matrix"

    def generate(self, config: Mapping[str, Any], context: GeneratorContext) -> list[ParameterSet]:
        model = context.validate(MatrixConfig, config)
        first_entry, second_entry = model.generators
        base = f"{context.field_path}.generators"
        firsts = [flatten(p) for p in context.generate(first_entry, f"{base}[0]")]
        where = f"{base}[1]"
        shared: list[dict[str, str]] | None = None
        if not _uses_parameters(second_entry):
            shared = [flatten(p) for p in context.generate(second_entry, where)]
        product: list[ParameterSet] = []
        for first in firsts:
            if shared is not None:
                seconds = shared
            else:
                entry = render(second_entry, first, where=context.where, field=where)
                seconds = [flatten(p) for p in context.generate(entry, where)]
            for second in seconds:
                clash = sorted(k for k in first.keys() & second.keys() if first[k] != second[k])
                if clash:
                    raise context.error(f"both generators of the matrix give parameter "
                                        f"{clash[0]!r}, with different values")
                product.append({**first, **second})
        return product
