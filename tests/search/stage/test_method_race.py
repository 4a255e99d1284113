"""The method race's schedule: rounds halve the field, the budget is spent exactly, survivors
are the best so far (ties: config order), and a cut method never runs again."""

from __future__ import annotations

import pytest

from mergekit_evo.search.stage.method_race import field_sizes, next_round, per_method


def _race(methods, budget, scores):
    done = []
    while (r := next_round(methods, budget, done, scores)) is not None:
        done.append(r)
    return done


@pytest.mark.parametrize(("n", "budget"), [(1, 50), (2, 40), (3, 120), (4, 100), (5, 77)])
def test_every_trial_of_the_budget_is_spent(n: int, budget: int) -> None:
    methods = [f"m{i}" for i in range(n)]
    rounds = _race(methods, budget, {m: float(i) for i, m in enumerate(methods)})
    assert [len(r.methods) for r in rounds] == field_sizes(n)
    spent = sum(
        r.max_trials[m] - (rounds[i - 1].max_trials.get(m, 0) if i else 0)
        for i, r in enumerate(rounds)
        for m in r.methods
    )
    assert spent == budget
    assert len(rounds[-1].methods) == 1


def test_three_methods_120_trials() -> None:
    assert field_sizes(3) == [3, 2, 1]
    assert per_method(3, 120) == [13, 20, 41]
    scores = {"dare_ties": 0.5, "ties": 0.7, "task_arithmetic": 0.6}
    rounds = _race(list(scores), 120, scores)
    assert [r.methods for r in rounds] == [
        ("dare_ties", "ties", "task_arithmetic"),
        ("ties", "task_arithmetic"),
        ("ties",),
    ]
    assert rounds[-1].max_trials == {"ties": 13 + 20 + 41}


def test_ties_and_missing_scores_follow_the_config_order() -> None:
    rounds = _race(["a", "b", "c"], 60, {"a": None, "b": 0.5, "c": 0.5})
    assert rounds[1].methods == ("b", "c") and rounds[2].methods == ("b",)


@pytest.mark.parametrize(("n", "budget"), [(3, 2), (3, 5), (2, 2)])
def test_a_budget_too_small_for_the_rounds_is_one_round(n: int, budget: int) -> None:
    methods = [f"m{i}" for i in range(n)]
    rounds = _race(methods, budget, {})
    assert len(rounds) == 1
    assert sum(rounds[0].max_trials.values()) == budget
    assert rounds[0].methods == tuple(methods[: min(n, budget)])
