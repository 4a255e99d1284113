"""Question slices: the fitness set, its rungs and the confirm slice are disjoint prefixes of
the search split; scores over rungs combine to the score over their union; the Wilson bound."""

from __future__ import annotations

import math

import pytest

from mergekit_evo.fitness import FitnessEvaluator, FitnessSpec, TaskSpec
from mergekit_evo.fitness.slices import AUTO_CONFIRM, QuestionPlan, Tally, wilson_upper

from .conftest import ScriptedLM
from .test_evaluator import _half, _mixed

TASKS = {"evo_gsm8k_search": 2.0, "evo_mgsm_direct_ja_search": 1.0}


@pytest.fixture(scope="module")
def ev() -> FitnessEvaluator:
    spec = FitnessSpec(tasks=[TaskSpec(name=n, weight=w) for n, w in TASKS.items()], limit=40)
    return FitnessEvaluator(spec)


def test_plan_cuts_disjoint_prefixes() -> None:
    plan = QuestionPlan.make({"a": 1000, "b": 90}, 80, [0.25, 0.5, 1.0], None)
    assert plan.fitness == {"a": range(0, 80), "b": range(0, 80)}
    assert [r["a"] for r in plan.rungs] == [range(0, 20), range(20, 40), range(40, 80)]
    # auto: at most AUTO_CONFIRM, at most the fitness's 80, at most what is left (b: 10)
    assert plan.confirm == {"a": range(80, 160), "b": range(80, 90)}
    for name in ("a", "b"):
        seen = [i for r in plan.rungs for i in r[name]]
        assert seen == list(plan.fitness[name])  # each fitness question once, in order
        assert not set(plan.confirm[name]) & set(plan.fitness[name])
    assert plan.n_fitness == 160 and plan.n_confirm == 80 + 10
    big = QuestionPlan.make({"a": 1000}, 400, None, None)
    assert big.confirm["a"] == range(400, 400 + AUTO_CONFIRM)
    # auto never confirms on more questions than the fitness scores
    assert QuestionPlan.make({"a": 1000}, 4, None, None).confirm["a"] == range(4, 8)
    # a fraction limit follows lm-eval (ceil), the whole split when None, confirm 0 when off
    assert QuestionPlan.make({"a": 10}, 0.25, None, 0).fitness["a"] == range(0, 3)
    assert QuestionPlan.make({"a": 10}, None, None, None).confirm["a"] == range(10, 10)


def test_plan_refuses_a_confirm_slice_that_does_not_fit() -> None:
    with pytest.raises(ValueError, match=r"confirm.questions=30: task 'a' has 100 .* at most 20"):
        QuestionPlan.make({"a": 100}, 80, None, 30)


def test_rungs_combine_to_the_full_score(ev: FitnessEvaluator, scripted: ScriptedLM) -> None:
    lm = scripted.make(_mixed)
    full = ev.score_lm(lm)
    plan = QuestionPlan.make(ev.sizes(), 40, [0.25, 0.5, 1.0], 0)
    tally = Tally(TASKS)
    for rung in plan.rungs:
        res = ev.score_lm(lm, rung)
        assert res.counts == {n: len(r) for n, r in rung.items()}
        tally.add({n: res.per_task[n][ev.metrics[n]] for n in res.per_task}, res.counts)
    assert tally.questions == 80
    assert tally.fitness() == pytest.approx(full.score)
    assert tally.per_task() == pytest.approx({n: full.per_task[n][ev.metrics[n]] for n in TASKS})


def test_a_slice_scores_exactly_its_questions(ev: FitnessEvaluator, scripted: ScriptedLM) -> None:
    docs = {"evo_gsm8k_search": range(40, 60), "evo_mgsm_direct_ja_search": range(0, 0)}
    res = ev.score_lm(scripted.make(_mixed), docs)
    task = ev.tasks["evo_gsm8k_search"]
    expected = sum(_half(d["question"]) for d in list(task.eval_docs)[40:60]) / 20
    assert set(res.per_task) == {"evo_gsm8k_search"}  # an empty slice is left out, not "all"
    assert res.score == pytest.approx(expected) and res.counts == {"evo_gsm8k_search": 20}
    with pytest.raises(Exception, match="cannot score"):
        ev.score_lm(scripted.make(_mixed), {"evo_gsm8k_search": range(0, 10**6)})


def test_slicing_needs_mean_metrics(ev: FitnessEvaluator) -> None:
    ev.check_sliceable("fitness.fidelity")  # exact match: a mean
    from lm_eval.api.metrics import mean

    task = ev.tasks["evo_gsm8k_search"]
    saved = dict(task._aggregation_list)
    try:
        task._aggregation_list["exact_match"] = max
        with pytest.raises(Exception, match="plain mean"):
            ev.check_sliceable("fitness.fidelity")
    finally:
        task._aggregation_list.clear()
        task._aggregation_list.update(saved)
    assert task.aggregation()["exact_match"] is mean


def test_wilson_upper_bound() -> None:
    assert wilson_upper(0.5, 0, 1.0) == 1.0
    assert wilson_upper(1.0, 50, 1.0) == 1.0
    ub = wilson_upper(0.4, 100, 1.0)
    assert 0.4 < ub < 0.46
    assert wilson_upper(0.4, 400, 1.0) < ub  # more questions, tighter
    assert wilson_upper(0.4, 100, 2.0) > ub  # surer, wider
    assert wilson_upper(0.0, 25, 1.0) == pytest.approx(1 / 26)
    assert math.isclose(wilson_upper(0.3, 10**9, 1.0), 0.3, abs_tol=1e-4)
