"""What the search needs from a genome: a vector space and a vector -> MergeKit recipe map."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from mergekit_evo.space.vector import VectorSpace


class Space(Protocol):
    """A genome: ``vector`` is what the optimiser sees, ``recipe`` what MergeKit runs."""

    vector: VectorSpace
    name: str  # "ps" or "dfs": the study suffix and the trial user attr "stage"

    def recipe(self, x: np.ndarray) -> dict[str, Any]:
        """The MergeKit config (a plain dict, YAML-ready) for vector ``x``."""
        ...

    def describe(self, x: np.ndarray) -> dict[str, float]:
        """Human-readable named values of ``x`` (trials.csv columns)."""
        ...
