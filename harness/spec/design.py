"""A factorial design that several claims share, declared beside them as data.

A hypothesis module names its design as `DESIGN = Factorial(...)`; results.json records each design once,
with the modules that declare it, and the report (harness.report.factorial) renders it: one table of cell
means per dataset, and the declared contrasts of those means. The cells are arm names the declaring
claims use; nothing in the harness knows which claims or pipelines they are.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .config import ConfigError
from .schema import Record


@dataclass(frozen=True)
class Contrast(Record):
    """sum(weight x cell mean) over the cells it names: an effect the design isolates."""
    name: str
    weights: dict[str, float]  # cell -> weight
    what: str = ""  # what it isolates, in words


@dataclass(frozen=True)
class Factorial(Record):
    """Factors with their levels, one cell (an arm name) per combination of levels, and contrasts."""
    title: str
    factors: dict[str, tuple[str, ...]]  # factor -> its levels, in the order the table shows them
    cells: dict[str, tuple[str, ...]]  # arm name -> its level of each factor, in the factors' order
    contrasts: tuple[Contrast, ...] = ()
    modules: tuple[str, ...] = ()  # the hypothesis modules that declare it: results.json fills it in

    def __post_init__(self):
        for cell, levels in self.cells.items():
            if len(levels) != len(self.factors) or any(v not in vs for vs, v in zip(self.factors.values(), levels)):
                raise ConfigError(f"{self.title}: cell {cell!r} has levels {tuple(levels)}; give one level of each "
                                  f"factor, in order: {', '.join(f'{f} {vs}' for f, vs in self.factors.items())}")
        if len({tuple(v) for v in self.cells.values()}) != len(self.cells) \
                or len(self.cells) != math.prod(len(v) for v in self.factors.values()):
            raise ConfigError(f"{self.title}: a factorial design has one cell per combination of levels "
                              f"({' x '.join(str(len(v)) for v in self.factors.values())}); these cells are "
                              f"{dict(self.cells)}")
        for c in self.contrasts:
            unknown = sorted(set(c.weights) - set(self.cells))
            if unknown:
                raise ConfigError(f"{self.title}: contrast {c.name!r} weighs {unknown}, which are not cells: "
                                  f"use {sorted(self.cells)}")

    def cell_at(self, levels: tuple[str, ...]) -> str:
        return next(c for c, v in self.cells.items() if tuple(v) == tuple(levels))
