"""evaluate_gsm8k / evaluate_mgsm: the shipped tasks' scores as a dict, and as a merge fitness."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest

from mergekit_evo.api import APIConfigError, evaluate_gsm8k, evaluate_mgsm
from mergekit_evo.api.benchmarks import benchmark_fitness
from mergekit_evo.fitness import FitnessEvaluator
from tests.fitness.conftest import ScriptedLM, gold_table


def _mixed(q: str, gold: str) -> str:
    """Right on a fixed half of the questions, wrong (gold + 1) on the rest."""
    number = gold.split("####")[-1].strip().replace(",", "")
    return gold if len(q) % 2 == 0 else f"The answer is {float(number) + 1:g}."


@pytest.fixture(scope="module")
def scripted() -> ScriptedLM:
    return ScriptedLM(gold_table())


@pytest.mark.parametrize(
    ("evaluate", "task"),
    [(evaluate_gsm8k, "evo_gsm8k"), (functools.partial(evaluate_mgsm, language="en"), None)],
)
def test_counts_match_the_lm_eval_metric(monkeypatch, scripted, evaluate, task):
    monkeypatch.setattr(FitnessEvaluator, "make_lm", lambda self, *a, **k: scripted.make(_mixed))
    model = SimpleNamespace(device="cpu")  # the scripted LM stands in for the model
    out = evaluate(model, None, max_samples=10, num_fewshot=0, return_samples=True)
    assert out["task"] == (task or "evo_mgsm_direct_en") and out["total"] == 10
    assert out["metric"] == "exact_match,numeric"
    assert out["accuracy"] == pytest.approx(out["correct"] / out["total"])
    assert 0 < out["correct"] < 10  # the mixed rule gets some right, some wrong
    assert len(out["samples"]) == 10
    for s in out["samples"]:
        assert s["correct"] == (len(s["question"]) % 2 == 0)
        assert s["question"] in s["prompt"] and s["response"]


def test_bad_arguments_are_refused_before_scoring():
    with pytest.raises(APIConfigError, match="split: 'heldout' is not a GSM8K split"):
        evaluate_gsm8k(None, None, split="heldout")
    with pytest.raises(APIConfigError, match="language: 'jp' is not an MGSM language"):
        evaluate_mgsm(None, None, language="jp")
    with pytest.raises(APIConfigError, match="max_samples: must be a count >= 1"):
        evaluate_gsm8k(None, None, max_samples=0)


def test_as_a_fitness_they_become_the_search_split_task():
    assert benchmark_fitness(evaluate_gsm8k) == {
        "tasks": [{"name": "evo_gsm8k_search", "require_language": None}],
        "engine": "mergekit_evo",
        "limit": None,
    }
    mgsm = benchmark_fitness(
        functools.partial(evaluate_mgsm, language="de", max_samples=20, require_language=True)
    )
    assert mgsm["tasks"] == [{"name": "evo_mgsm_direct_de_search", "require_language": "de"}]
    assert mgsm["limit"] == 20
    assert benchmark_fitness(lambda m, t: 1.0) is None  # any other callable is called per trial


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (functools.partial(evaluate_gsm8k, split="test"), "split: 'test' as a merge's fitness"),
        (functools.partial(evaluate_gsm8k, return_samples=True), "return_samples: a search"),
        (functools.partial(evaluate_mgsm, device="cuda"), "device: give it to the merge call"),
        (functools.partial(evaluate_gsm8k, language="ja"), "language: an MGSM setting"),
    ],
)
def test_fitness_settings_that_mean_nothing_in_a_search_are_refused(fn, message):
    with pytest.raises(APIConfigError, match=message):
        benchmark_fitness(fn)
