"""A short planted PS search through the project's search recovers the planted weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from mergekit_evo.planted import recipes
from mergekit_evo.planted.metrics import summarize
from mergekit_evo.planted.problem import PlantedProblem
from mergekit_evo.planted.search import run_planted_search

TRIALS = 30  # ~1 min on two busy CPU cores
TOL = 0.15
GAP_PCT = 5.0


def test_short_ps_search_recovers_planted_weights(ps_problem: PlantedProblem, tmp_path: Path):
    run = run_planted_search(ps_problem, tmp_path / "run", TRIALS, seed=0)
    assert len(run.trials) == TRIALS
    assert (run.result.rundir / "best.yml").exists()
    s = summarize(ps_problem, run.trials, "search", 0, run.seconds)
    champ = s.champion
    assert champ.weights is not None
    for got, want in zip(champ.weights, recipes.PS_WEIGHTS, strict=True):
        assert abs(got - want) <= TOL, (champ.weights, recipes.PS_WEIGHTS)
    assert abs(champ.gap_pct) <= GAP_PCT
    # and the search improved on its start point (0.5, 0.5), the first trial
    assert run.trials[0].fitness is not None and champ.fitness > run.trials[0].fitness


def test_mergekit_cma_baseline_uses_mergekit_settings(
    ps_problem: PlantedProblem, tmp_path: Path, scorer
) -> None:
    import numpy as np

    from mergekit_evo.planted.baseline import genome_recipe, mergekit_genome, run_mergekit_cma

    # MergeKit's genome reaches the same optimum: the planted weights give the planted fitness
    at_planted = genome_recipe(mergekit_genome(ps_problem), np.array(recipes.PS_WEIGHTS))
    assert scorer(ps_problem, at_planted) == pytest.approx(ps_problem.planted_fitness, abs=1e-6)

    run = run_mergekit_cma(ps_problem, tmp_path / "cma", budget=3, seed=0)
    assert run.x0 == [0.5, 0.5] and run.sigma0 == 1 / 6 and run.popsize == 6
    assert len(run.trials) == 3
    for t in run.trials:
        assert t.recipe is not None and t.recipe["merge_method"] == "task_arithmetic"
        assert all(w >= 0 for w in recipes.ps_weights(t.recipe))  # MergeKit's abs()
        assert t.fitness is not None and t.fitness < ps_problem.planted_fitness + 0.05


def test_rng_guard_shields_pycma_from_the_candidate_builds_reseeding() -> None:
    """MergeKit's run_merge reseeds numpy's global RNG per candidate; pycma samples from it."""
    import numpy as np

    from mergekit_evo.fitness.evaluator import keep_global_rng

    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    with keep_global_rng():
        np.random.seed(0)  # what MergeKit's set_seed does per candidate
        np.random.rand(5)
    assert np.array_equal(np.random.rand(3), expected)
