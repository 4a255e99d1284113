"""The generic CMA-ES API: known optima are found; bounds and normalisation hold."""

from __future__ import annotations

import numpy as np
import pytest

from mergekit_evo.optimize import cma_optimize


def test_quadratic_optimum_found_within_tolerance():
    target = np.array([0.2, 0.7, 0.4, 0.9])
    res = cma_optimize(lambda x: -float(np.sum((x - target) ** 2)), 4, max_generations=300, seed=3)
    assert np.allclose(res.x, target, atol=1e-3)
    assert res.fitness == pytest.approx(0.0, abs=1e-6)
    assert res.history == sorted(res.history)  # best-so-far never decreases


def test_minimise_and_optimum_outside_bounds_lands_on_the_bound():
    seen: list[np.ndarray] = []

    def f(x: np.ndarray) -> float:
        seen.append(x.copy())
        return float((x[0] - 3.0) ** 2 + (x[1] + 0.5) ** 2)

    res = cma_optimize(
        f, 2, bounds=[(0.0, 1.0), (-0.2, 0.8)], x0=[0.5, 0.3], maximize=False, max_generations=80
    )
    assert all(0.0 <= s[0] <= 1.0 and -0.2 <= s[1] <= 0.8 for s in seen)
    assert res.x == pytest.approx([1.0, -0.2], abs=1e-3)


def test_normalised_coefficients_sum_to_one():
    goal = np.array([0.1, 0.3, 0.6])
    seen: list[float] = []

    def f(x: np.ndarray) -> float:
        seen.append(float(x.sum()))
        return -float(np.sum((x - goal) ** 2))

    res = cma_optimize(f, 3, normalize=True, max_generations=150)
    assert all(s == pytest.approx(1.0) for s in seen)
    assert res.x.sum() == pytest.approx(1.0)
    assert np.allclose(res.x, goal, atol=5e-3)


def test_stopping_rules():
    f = lambda x: -float(np.sum((x - 0.3) ** 2))  # noqa: E731
    assert "target" in cma_optimize(f, 2, target_fitness=-1e-2).stop_reason
    flat = cma_optimize(lambda x: 1.0, 3, patience=2, tolerance=None)
    assert "patience" in flat.stop_reason and flat.generations == 2
    short = cma_optimize(f, 2, max_generations=3, tolerance=None)
    assert short.generations == 3 and short.evaluations == 1 + 3 * short_pop(2)
    pop = cma_optimize(f, 2, population_size=10, max_generations=2, tolerance=None)
    assert pop.evaluations == 1 + 2 * 10


def short_pop(n: int) -> int:
    from mergekit_evo.space.vector import default_population_size

    return default_population_size(n)
