"""Planted recipes and the recovery measures (no models involved)."""

from __future__ import annotations

import copy
from pathlib import Path

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


@pytest.mark.parametrize("seed", [*recipes.RANDOM_DFS_SEEDS, *range(200)])
def test_random_dfs_plan_is_a_valid_path(seed: int) -> None:
    plan = recipes.random_dfs_plan(seed)
    assert plan == recipes.random_dfs_plan(seed)  # deterministic per seed
    assert plan.T == 16 and plan.repeats == recipes.REPEATS
    lo, hi = recipes.RANDOM_PATH_LENGTH
    assert lo <= len(plan.slots) <= hi
    assert all(0 <= t < plan.T for t in plan.slots)
    assert list(plan.slots) == sorted(set(plan.slots))
    path = recipes.path_of(plan.indicators(), plan.layer_counts, plan.repeats)
    assert recipes.canonical_slots(path, plan.M, plan.repeats) == list(plan.slots)  # canonical
    assert path[0] < recipes.N_LAYERS  # starts with a layer of A (A supplies the embeddings)
    assert {g // recipes.N_LAYERS for g in path} == {0, 1}  # uses both models
    (w_aa, w_ab), (w_ba, w_bb) = plan.scales
    assert w_aa == w_bb == 1.0
    s_lo, s_hi = recipes.RANDOM_SCALE_RANGE
    assert s_lo <= w_ab <= s_hi and s_lo <= w_ba <= s_hi


def test_random_dfs_plans_differ_by_seed_and_from_the_hand_made_ones() -> None:
    plans = [recipes.random_dfs_plan(s) for s in recipes.RANDOM_DFS_SEEDS]
    assert len({p.slots for p in plans}) == len(plans)
    assert all(p.slots != recipes.DFS_PLAN.slots for p in plans)
    assert len({recipes.random_dfs_plan(s).slots for s in range(50)}) > 25  # not a few paths


def test_random_kind_names_and_modes() -> None:
    from mergekit_evo.planted.problem import PlantedProblem, mode_of, plan_of

    kind = recipes.random_kind(1013)
    assert kind == "dfs_r1013" and recipes.random_seed_of(kind) == 1013
    assert recipes.random_seed_of("dfs") is None and recipes.random_seed_of("dfs_rx") is None
    assert mode_of(kind) == "dfs" and mode_of("ps_dfs") == "ps_dfs"
    assert plan_of(kind) == recipes.random_dfs_plan(1013) and plan_of("dfs") == recipes.DFS_PLAN
    with pytest.raises(ValueError):
        mode_of("dfs_random")
    problem = PlantedProblem(
        kind=kind,
        root=Path("/nonexistent"),
        base="base",
        models={"ft1": "a", "ft2": "b"},
        recipe={},
        task="t",
        tasks_dir="d",
        planted_fitness=-1.0,
    )
    cfg = problem.search_config(10, 0)
    assert cfg["mode"] == "dfs" and "base_model" not in cfg and cfg["dfs"]["repeats"] == 2
