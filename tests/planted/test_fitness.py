"""The planted fitness: computed correctly by lm-eval, and maximal at the planted recipe."""

from __future__ import annotations

import copy
import json

import pytest

from mergekit_evo.planted import recipes
from mergekit_evo.planted.problem import PlantedProblem


def _texts(problem: PlantedProblem) -> list[str]:
    path = problem.root / problem.kind / "data" / f"{problem.task}.jsonl"
    return [json.loads(line)["text"] for line in path.read_text().splitlines()]


def test_lm_eval_score_equals_direct_loglik(ps_problem: PlantedProblem) -> None:
    """The lm-eval task scores exactly the mean per-token log-likelihood of the samples."""
    import torch
    import transformers

    from mergekit_evo.planted.task import direct_loglik_per_token

    target = ps_problem.root / "ps" / "target"
    model = transformers.AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32)
    tok = transformers.AutoTokenizer.from_pretrained(str(target))
    texts = _texts(ps_problem)
    assert len(texts) == ps_problem.settings.n_texts
    assert all(len(t.split()) == ps_problem.settings.n_tokens for t in texts)
    direct = direct_loglik_per_token(model, tok, texts)
    assert ps_problem.planted_fitness == pytest.approx(direct, abs=1e-5)


def test_planted_ps_recipe_beats_perturbed_ones(ps_problem: PlantedProblem, scorer) -> None:
    planted = scorer(ps_problem, ps_problem.recipe)
    assert planted == pytest.approx(ps_problem.planted_fitness, abs=1e-6)  # rebuilt = target
    for i in range(2):
        for d in (-0.05, 0.05):
            w = list(recipes.PS_WEIGHTS)
            w[i] += d
            r = recipes.ps_recipe(ps_problem.base, list(ps_problem.models.values()), tuple(w))
            assert scorer(ps_problem, r) < planted, f"weight {i} {d:+}"
    far = recipes.ps_recipe(ps_problem.base, list(ps_problem.models.values()), (0.5, 0.5))
    assert scorer(ps_problem, far) < planted


def test_planted_dfs_recipe_beats_perturbed_ones(dfs_problem: PlantedProblem, scorer) -> None:
    planted = scorer(dfs_problem, dfs_problem.recipe)
    assert planted == pytest.approx(dfs_problem.planted_fitness, abs=1e-6)
    for t in (1, 2, 5, 10, 14):  # drop a kept layer / add one, in both repetitions
        r = copy.deepcopy(dfs_problem.recipe)
        r["parameters"]["indicators"][t] *= -1
        assert scorer(dfs_problem, r) < planted, f"slot {t} flipped"
    for i, j, d in ((0, 1, 0.1), (1, 0, -0.1)):
        r = copy.deepcopy(dfs_problem.recipe)
        r["parameters"]["scales"][i][j] += d
        assert scorer(dfs_problem, r) < planted, f"W[{i}][{j}] {d:+}"
