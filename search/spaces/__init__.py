"""Search spaces, one per file, found by name.

A space module defines `space(trial) -> dict | None`, an Optuna define-by-run function that only
suggests values (no computation), and a one-line module docstring saying which question it asks.
It may also define `DEFAULTS` (fixed trainer settings merged under every suggestion) and `GRID`
(a dict of value lists: the space is then an exhaustive grid, sampled with Optuna's GridSampler),
and `BASELINES` (complete points of a non-grid space, evaluated first, in order).
The keys are the `avspot train --set` keys: ModelConfig and TrainConfig fields. A parameter whose
name starts with `_` is search-only (e.g. a grid axis that the space turns into real keys): the
trial drops it before merging the suggestions into its config (`tuning.trial.trial_config`).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from avspot.datasets.errors import DataError


@dataclass(frozen=True)
class Space:
    """A loaded search space."""

    name: str
    question: str
    module: ModuleType
    defaults: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] | None = None
    baselines: list[dict[str, Any]] = field(default_factory=list)

    def suggest(self, trial: Any) -> dict[str, Any] | None:
        return self.module.space(trial)

    @property
    def grid_size(self) -> int | None:
        if self.grid is None:
            return None
        n = 1
        for values in self.grid.values():
            n *= len(values)
        return n


def available_spaces() -> list[str]:
    """Names of the shipped spaces (the modules of this package)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get_space(name: str) -> Space:
    """Load a space by name; an unknown name fails with the list of valid ones."""
    names = available_spaces()
    if name not in names:
        raise DataError(
            f"space {name!r}: unknown search space; valid: {', '.join(names)}", field="space"
        )
    module = importlib.import_module(f"{__name__}.{name}")
    doc = (module.__doc__ or "").strip().splitlines()
    return Space(
        name=name,
        question=doc[0] if doc else "",
        module=module,
        defaults=dict(getattr(module, "DEFAULTS", {})),
        grid=getattr(module, "GRID", None),
        baselines=[dict(b) for b in getattr(module, "BASELINES", [])],
    )
