"""benchmarks/zoo_table.py's plumbing, without scoring a model: which searches a zoo gets (the
multi-fidelity-off twins), what a twin's config drops, how a search's candidates are counted,
and which hand recipes become the ``hand:`` / ``hand_path:`` rows (each distinct recipe once)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "fixtures" / "zoo-paths"


@pytest.fixture(scope="module")
def zt():
    sys.path.insert(0, str(REPO / "benchmarks"))  # zoo_table imports its sibling zoo_report
    try:
        spec = importlib.util.spec_from_file_location(
            "zoo_table_under_test", REPO / "benchmarks" / "zoo_table.py"
        )
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return mod


def test_search_kinds_and_their_multi_fidelity_twins(zt) -> None:
    args = zt.parse_args([])
    assert zt.search_kinds(args) == [
        "ps", "ps_choice", "dfs", "dfs_cma", "ps_dfs", "ps_choice:full", "dfs:full",
    ]  # fmt: skip
    args = zt.parse_args(
        ["--skip", "dfs", "--skip", "ps_choice:full", "--full-fidelity", "ps,dfs,ps_choice"]
    )
    assert zt.search_kinds(args) == ["ps", "ps_choice", "dfs_cma", "ps_dfs", "ps:full"]
    assert zt.search_kinds(zt.parse_args(["--full-fidelity", ""]))[-1] == "ps_dfs"
    with pytest.raises(SystemExit):
        zt.parse_args(["--full-fidelity", "ps,bogus"])
    assert zt.parse_args([]).hand_starts and not zt.parse_args(["--no-hand-starts"]).hand_starts


def test_quick_keeps_budgets_given(zt) -> None:
    args = zt.parse_args(["--quick", "--ps-trials", "6"])
    assert (args.ps_trials, args.dfs_trials, args.ps_dfs_trials) == (6, 4, 12)
    assert (args.limit, args.heldout_limit) == (10, 20)


def test_search_wall_per_kind(zt) -> None:
    args = zt.parse_args(["--search-wall", "60", "--search-wall", "ps_dfs=110"])
    assert zt.search_wall(args.search_wall, "ps") == 60.0
    assert zt.search_wall(args.search_wall, "ps_dfs") == 110.0
    assert zt.search_wall(args.search_wall, "ps_dfs:full") == 110.0
    assert zt.search_wall(zt.parse_args([]).search_wall, "dfs") is None
    for bad in ("bogus=5", "ps=soon", "0"):
        with pytest.raises(SystemExit):
            zt.parse_args(["--search-wall", bad])


def test_full_twin_drops_fidelity_only(zt) -> None:
    recipe = zt.RECIPE_SETS["paths"]["ps_choice"]
    on = zt.search_config("ps_choice", recipe, ZOO, 7, None, "cpu")
    off = zt.search_config("ps_choice:full", recipe, ZOO, 7, None, "cpu")
    assert on.fitness.fidelity is not None and off.fitness.fidelity is None
    assert on.model_copy(update={"fitness": off.fitness}) == off
    assert off.budget.max_trials == 7 and off.models["math"] == str(ZOO / "math")


def test_evaluations_count_complete_and_pruned(zt) -> None:
    trials = {
        "ps:ties": {"complete": 10, "pruned": 5, "fail": 1, "running": 0},
        "ps:dare_ties": {"complete": 20, "pruned": 0, "fail": 0, "running": 0},
    }
    assert zt.n_evaluations(trials) == 35
    assert zt.n_evaluations({"ps": {"complete": 120, "fail": 0, "running": 0}}) == 120


def test_canonical_drops_mergekit_defaults_only(zt) -> None:
    def merge(method: str, **params) -> dict:
        doc = {"merge_method": method, "base_model": "b", "models": [{"model": "m"}]}
        return doc | ({"parameters": params} if params else {})

    assert zt.canonical(merge("task_arithmetic", normalize=False)) == zt.canonical(
        merge("task_arithmetic")
    )
    assert zt.canonical(merge("ties", normalize=False)) != zt.canonical(merge("ties"))


def test_hand_rows_of_the_paths_zoo(zt) -> None:
    rows = zt.hand_points(zt.RECIPE_SETS["paths"], ZOO, "cpu")
    assert set(rows) == {
        "hand:x0:dare_ties", "hand:source:math", "hand:source:verbs", "hand:task_arithmetic",
        "hand:dare_ties:defaults", "hand:x0:ties", "hand:ties:defaults",
        "hand_path:own:verbs", "hand_path:own:math",
        "hand_path:half:verbs+math", "hand_path:half:math+verbs",
    }  # fmt: skip
    # one row per distinct merge: task arithmetic's x0 (normalize false, its default) and its
    # defaults are the equal-weight sum every space starts from
    ta = rows["hand:task_arithmetic"]
    assert "ps_choice/task_arithmetic x0:task_arithmetic" in ta["starts"]
    assert "ps task_arithmetic" in ta["starts"]
    assert ta["recipe"]["merge_method"] == "task_arithmetic"
    assert [m["parameters"]["weight"] for m in ta["recipe"]["models"]] == [1.0, 1.0]
    assert rows["hand:source:math"]["recipe"]["models"] == [
        {"model": str(ZOO / "math"), "parameters": {"weight": 1.0}}
    ]
    # the DFS search starts from VERBS' own path (model A); that row says so
    start = [k for k, v in rows.items() if v.get("configured_start")]
    assert start == ["hand_path:own:verbs"]
    assert rows["hand_path:half:verbs+math"]["describe"] == "path verbs 0-3 | math 4-7"
    assert rows["hand_path:own:verbs"]["recipe"]["merge_method"] == "dfs"
