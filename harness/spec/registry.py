"""Name -> constructor registries in the timm style (harness.run.models.MODELS, harness.run.pipelines.PIPELINES).

A registry is a dict (so `name in R`, `R[name]`, `', '.join(R)` work) with a `register` decorator and a
`create` that passes keyword arguments through and turns the two ways they go wrong, an unknown name and
a keyword the constructor does not take, into one ConfigError that names the value and the choices.
"""
from __future__ import annotations

import re
from typing import Callable

from .config import ConfigError

# Pipeline name -> whether it rounds (a `modes` it crafts in), filled by harness.run.pipelines.register_pipeline:
# what the plan needs to know of a pipeline, readable without importing torch.
PIPELINE_ROUNDS: dict[str, bool] = {}
_BAD_KEYWORD = re.compile(r"(?:unexpected|multiple values for) keyword argument '(\w+)'")


class Registry(dict):
    def __init__(self, kind: str, home: str):
        super().__init__()
        self.kind, self.home = kind, home  # "model", "harness/run/models.py": for the error messages

    def register(self, name: str) -> Callable:
        """Decorator: `@R.register("resnet18")` over a constructor (a function or a class)."""
        def add(constructor):
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered twice ({self.home})")
            self[name] = constructor
            return constructor
        return add

    def create(self, name: str, *args, **kwargs):
        if name not in self:
            raise ConfigError(f"unknown {self.kind} {name!r}: choose one of {', '.join(self)} ({self.home})")
        try:
            return self[name](*args, **kwargs)
        except TypeError as e:  # only a bad keyword is the user's; any other TypeError is a bug: re-raised
            bad = _BAD_KEYWORD.search(str(e))
            if bad is None or bad.group(1) not in kwargs:
                raise
            raise ConfigError(f"{self.kind} {name!r} does not take the keyword argument {bad.group(1)!r} "
                              f"(given {self.kind}_kwargs {kwargs}): remove it, or see the {name!r} "
                              f"constructor in {self.home}") from None
