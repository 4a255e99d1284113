"""CMAESConfig / CMAESOptimizer: the write-up's names over cma_optimize, bad settings refused."""

from __future__ import annotations

import numpy as np
import pytest

from mergekit_evo.api import APIConfigError, CMAESConfig, CMAESOptimizer
from mergekit_evo.api.optimizer import search_settings


def _quad(x: np.ndarray) -> float:
    return -float(np.sum((x - np.array([0.2, 0.5, 0.8])) ** 2))


def test_optimize_finds_the_optimum_and_returns_coeffs_and_fitness():
    config = CMAESConfig(population_size=8, sigma=0.3, max_generations=200, seed=1)
    opt = CMAESOptimizer(config)
    best_coeffs, best_fitness = opt.optimize(_quad, n_dimensions=3, n_trials=1000)
    assert best_coeffs == pytest.approx([0.2, 0.5, 0.8], abs=1e-3)
    assert best_fitness == pytest.approx(_quad(best_coeffs))
    assert opt.result is not None and opt.result.evaluations <= 1000


def test_n_trials_caps_the_calls_part_way_through_a_generation():
    calls: list[int] = []

    def f(x: np.ndarray) -> float:
        calls.append(1)
        return _quad(x)

    opt = CMAESOptimizer(CMAESConfig(population_size=4, max_generations=100))
    opt.optimize(f, n_dimensions=3, n_trials=7)  # the start point + 1.5 generations
    assert len(calls) == 7 and opt.result.stop_reason == "max_evaluations 7 reached"


def test_stop_rules_and_per_coordinate_bounds():
    x, _ = CMAESOptimizer(
        CMAESConfig(bounds=[(0.0, 0.1), (0.6, 1.0)], max_generations=80)
    ).optimize(lambda v: -float(np.sum((v - 0.5) ** 2)), n_dimensions=2)
    assert x == pytest.approx([0.1, 0.6], abs=1e-3)
    opt = CMAESOptimizer(CMAESConfig(target_fitness=-0.05, max_generations=500))
    opt.optimize(_quad, n_dimensions=3)
    assert opt.result.stop_reason == "target fitness reached"
    opt = CMAESOptimizer(CMAESConfig(patience=2, max_generations=500))
    opt.optimize(lambda v: 1.0, n_dimensions=3)
    assert opt.result.stop_reason.startswith("patience")
    opt = CMAESOptimizer(CMAESConfig(tolerance=1e-3, max_generations=500))
    opt.optimize(lambda v: 1.0, n_dimensions=3)
    assert opt.result.stop_reason.startswith("converged")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"population_size": 50, "n_parents": 10}, "CMAESConfig.n_parents: 10 is not what"),
        ({"mutation_rate": 0.1}, "CMAESConfig.mutation_rate = 0.1: CMA-ES adapts its own step"),
        ({"sigma": 0}, "CMAESConfig.sigma: Input should be greater than 0 (got 0)"),
        ({"bounds": (1.0, 0.0)}, "CMAESConfig.bounds: each (low, high) pair needs low < high"),
    ],
)
def test_bad_settings_are_one_line_errors_naming_the_field(kwargs, message):
    with pytest.raises(APIConfigError) as err:
        CMAESConfig(**kwargs)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_n_parents_is_accepted_when_it_is_what_cma_es_uses():
    assert CMAESConfig(population_size=50, n_parents=25).n_parents == 25
    with pytest.raises(APIConfigError, match="population_size // 2 = 3"):
        CMAESOptimizer(CMAESConfig(n_parents=4)).optimize(_quad, n_dimensions=3)  # pop 7


def test_merge_settings_map_onto_the_search_and_refuse_what_it_lacks():
    s = search_settings(CMAESConfig(population_size=6, sigma=0.3, max_generations=4, seed=2), 3)
    assert s["optimizer"] == {"sampler": "cmaes", "population_size": 6, "sigma0": 0.3, "seed": 2}
    assert s["budget"]["max_trials"] == 1 + 4 * 6
    with pytest.raises(APIConfigError, match="CMAESConfig.tolerance = 0.01: the merge search"):
        search_settings(CMAESConfig(tolerance=0.01), 3)
    with pytest.raises(APIConfigError, match="CMAESConfig.bounds: a merge takes one"):
        search_settings(CMAESConfig(bounds=[(0, 1), (0, 2)]), 2)
