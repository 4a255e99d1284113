"""``CMAESConfig`` and ``CMAESOptimizer``: the write-up's names over :func:`cma_optimize`.

One CMA-ES in the project (Optuna's ``CmaEsSampler``): this class only renames its settings and
returns ``(best_coeffs, best_fitness)``. The same ``CMAESConfig`` drives the merge calls
(:func:`mergekit_evo.api.ps_merge_with_cmaes`), where each field maps onto the search config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from mergekit_evo.api.errors import APIConfigError, Settings
from mergekit_evo.optimize import OptimizeResult, cma_optimize
from mergekit_evo.space.vector import default_population_size

Bounds = tuple[float, float]


class CMAESConfig(Settings):
    """CMA-ES settings.

    ``sigma`` is the initial step as a fraction of each coordinate's bounds range (with the
    default bounds [0, 1] that is the step itself); ``population_size`` None: 4 + floor(3 ln n);
    ``n_parents``: Optuna's CMA-ES recombines the best ``population_size // 2`` of each
    generation, so only that value (or None) is accepted.
    """

    population_size: int | None = Field(None, ge=2)
    sigma: float = Field(1 / 6, gt=0)
    max_generations: int = Field(100, ge=1)
    n_parents: int | None = Field(None, ge=1)
    target_fitness: float | None = None
    tolerance: float | None = Field(None, ge=0)  # stop when a generation's spread is <= this
    patience: int | None = Field(None, ge=1)  # generations without improving the best
    bounds: Bounds | list[Bounds] = (0.0, 1.0)
    seed: int = 0

    NO_MEANING = {
        "mutation_rate": "CMA-ES adapts its own step size (sigma); there is no mutation rate",
        "crossover_rate": "CMA-ES recombines the best half of each generation; no crossover",
        "elite_size": "CMA-ES keeps no elite; the best trial is kept by the study",
    }

    @field_validator("bounds")
    @classmethod
    def _bounds(cls, v: Bounds | list[Bounds]) -> Bounds | list[Bounds]:
        for lo, hi in [v] if isinstance(v, tuple) else v:
            if not lo < hi:
                raise ValueError("each (low, high) pair needs low < high")
        return v

    @model_validator(mode="after")
    def _parents(self) -> CMAESConfig:
        if self.population_size is not None:
            self.check_parents(self.population_size)
        return self

    def population(self, n_dimensions: int) -> int:
        """The generation size for ``n_dimensions`` coordinates."""
        return self.population_size or default_population_size(n_dimensions)

    def check_parents(self, population: int) -> None:
        """Refuse an ``n_parents`` the sampler would not use (it is not configurable there)."""
        if self.n_parents is not None and self.n_parents != population // 2:
            raise ValueError(
                f"n_parents: {self.n_parents} is not what Optuna's CMA-ES uses; it recombines "
                f"the best population_size // 2 = {population // 2}: leave it unset or give "
                f"{population // 2}"
            )


class CMAESOptimizer:
    """``CMAESOptimizer(config).optimize(fitness_fn, n_dimensions, n_trials)`` maximises
    ``fitness_fn(coeffs) -> float`` over ``n_dimensions`` bounded coefficients."""

    def __init__(self, config: CMAESConfig | None = None) -> None:
        self.config = config or CMAESConfig()
        self.result: OptimizeResult | None = None  # history, stop reason, evaluations

    def optimize(
        self,
        fitness_fn: Callable[[np.ndarray], float],
        n_dimensions: int,
        n_trials: int | None = None,
        *,
        x0: float | list[float] = 0.5,
        normalize: bool = False,
        maximize: bool = True,
    ) -> tuple[np.ndarray, float]:
        """(best coefficients, best fitness); ``n_trials`` caps the calls of ``fitness_fn``
        (the start point included) as ``max_generations`` caps the generations."""
        c = self.config
        if n_dimensions < 1:
            raise APIConfigError(f"n_dimensions: must be >= 1 (got {n_dimensions})")
        if n_trials is not None and n_trials < 1:
            raise APIConfigError(f"n_trials: must be >= 1 (got {n_trials})")
        if not isinstance(c.bounds, tuple) and len(c.bounds) != n_dimensions:
            raise APIConfigError(
                f"CMAESConfig.bounds: {len(c.bounds)} (low, high) pairs for n_dimensions "
                f"{n_dimensions}; give one pair per coefficient, or one pair for all"
            )
        pop = c.population(n_dimensions)
        try:
            c.check_parents(pop)
        except ValueError as e:
            raise APIConfigError(f"CMAESConfig.{e}") from None
        self.result = cma_optimize(
            fitness_fn,
            n_dimensions,
            x0=x0,
            sigma0=c.sigma,
            bounds=c.bounds,
            population_size=pop,
            max_generations=c.max_generations,
            max_evaluations=n_trials,
            target_fitness=c.target_fitness,
            tolerance=c.tolerance,
            patience=c.patience,
            seed=c.seed,
            normalize=normalize,
            maximize=maximize,
        )
        return self.result.x, self.result.fitness


def check_merge_config(config: CMAESConfig) -> None:
    """What a merge cannot honour, refused before anything runs: ``tolerance`` has no
    counterpart in the search (benchmark scores tie by chance, so it would stop a search early
    at random); per-coordinate bounds neither (a merge's bounds are per parameter)."""
    if config.tolerance is not None:
        raise APIConfigError(
            f"CMAESConfig.tolerance = {config.tolerance}: the merge search has no spread rule "
            "(benchmark scores tie by chance); use patience or target_fitness, or leave it unset"
        )
    if not isinstance(config.bounds, tuple):
        raise APIConfigError(
            "CMAESConfig.bounds: a merge takes one (low, high) pair for every model's weight, "
            f"not {len(config.bounds)} pairs"
        )


def search_settings(config: CMAESConfig, n_dimensions: int) -> dict[str, Any]:
    """The search config's ``optimizer`` / ``budget`` for a merge's CMA-ES stage over
    ``n_dimensions`` coordinates: ``max_generations`` becomes the stage's trials, 1 (the start
    point) + generations x population."""
    check_merge_config(config)
    pop = config.population(n_dimensions)
    try:
        config.check_parents(pop)
    except ValueError as e:
        raise APIConfigError(f"CMAESConfig.{e}") from None
    return {
        "optimizer": {
            "sampler": "cmaes",
            "population_size": pop,
            "sigma0": config.sigma,
            "seed": config.seed,
        },
        "budget": {
            "max_trials": 1 + config.max_generations * pop,
            "patience": config.patience,
            "target_fitness": config.target_fitness,
        },
        "stage_trials": 1 + config.max_generations * pop,
    }
