"""Planted recipes and the recovery measures (no models involved)."""

from __future__ import annotations

import copy

import pytest

from mergekit_evo.planted import recipes


def test_canonical_slots_earliest_encoding() -> None:
    # A0 A1 B1 B2 A2 A3 over M = 8 (A: 0-3, B: 4-7), repeats 2
    assert recipes.canonical_slots([0, 1, 5, 6, 2, 3], 8, 2) == [0, 1, 5, 6, 10, 11]
    assert recipes.canonical_slots([3, 0, 3, 0], 8, 2) is None  # needs a third repetition


def test_planted_plans_are_canonical() -> None:
    for plan in (recipes.DFS_PLAN, recipes.PS_DFS_PLAN):
        path = recipes.path_of(plan.indicators(), plan.layer_counts, plan.repeats)
        assert recipes.canonical_slots(path, plan.M, plan.repeats) == list(plan.slots)


def test_compare_dfs_exact_and_equivalent_encodings() -> None:
    r = recipes.dfs_recipe("a", "b", recipes.DFS_PLAN)
    same = recipes.compare_dfs(r, recipes.DFS_PLAN)
    assert same.slot_agreement == 1.0 and same.path_equal and same.scale_max_abs_error == 0.0
    # path [B3] from slot 7 or from slot 15 is the same model: canonical agreement ignores it
    one = {"parameters": {"indicators": [-1.0] * 16, "scales": [[1, 1], [1, 1]]}}
    alt = copy.deepcopy(one)
    one["parameters"]["indicators"][7] = 1.0
    alt["parameters"]["indicators"][15] = 1.0
    plan = recipes.DFSPlan(slots=(7,), scales=((1.0, 1.0), (1.0, 1.0)))
    assert recipes.compare_dfs(alt, plan).slot_agreement == 1.0
    assert recipes.compare_dfs(alt, plan).raw_slot_agreement == pytest.approx(14 / 16)


def test_compare_dfs_counts_wrong_slots_and_used_scales() -> None:
    r = recipes.dfs_recipe("a", "b", recipes.DFS_PLAN)
    r["parameters"]["indicators"][2] = 1.0  # A2 added in the first repetition
    r["parameters"]["scales"][0][1] = 0.9  # W[A][B]: used by the path (A1 -> B1)
    d = recipes.compare_dfs(r, recipes.DFS_PLAN)
    assert d.slot_agreement == pytest.approx(15 / 16)
    assert not d.path_equal
    assert d.scale_max_abs_error == pytest.approx(0.3)


def test_ps_weights_reads_both_recipe_forms() -> None:
    ours = recipes.ps_recipe("base", ["x", "y"], (0.2, 0.7))
    genome = {
        "slices": [
            {
                "sources": [
                    {"model": "x", "parameters": {"weight": 0.2}},
                    {"model": "y", "parameters": {"weight": 0.7}},
                    {"model": "base"},
                ]
            }
        ]
    }
    assert recipes.ps_weights(ours) == recipes.ps_weights(genome) == [0.2, 0.7]
