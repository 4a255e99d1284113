"""benchmarks/planted.py: kinds, random paths and merging new runs into an existing report."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mergekit_evo.planted import recipes

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "planted.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("planted_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(kind: str, opt: str, seed: int, agree: float) -> dict[str, Any]:
    champion = {"slot_agreement": agree, "gap_pct": 0.0, "path_equal": agree == 1.0}
    champion |= {"scale_max_abs_error": 0.01, "weight_max_abs_error": 0.01}
    return {"kind": kind, "optimizer": opt, "seed": seed, "champion": champion,
            "evaluations": 300, "evals_to_goal": 100}  # fmt: skip


def test_kinds_expand_random_seeds(bench: ModuleType) -> None:
    assert bench.expand_kinds("ps,dfs_random,dfs_r5", [1, 5]) == ["ps", "dfs_r1", "dfs_r5"]
    assert bench.expand_kinds("dfs_random", []) == []
    assert bench.mode_of("dfs_r7") == "dfs" and bench.mode_of("ps") == "ps"
    with pytest.raises(SystemExit):
        bench.expand_kinds("dfs_rx", [])
    for s in recipes.RANDOM_DFS_SEEDS:  # the report names every fixed random path
        kind = recipes.random_kind(s)
        assert bench.PLANTED_PATHS[kind] == recipes.path_names(recipes.random_dfs_plan(s))
    assert bench.planted_path("dfs_r3") == recipes.path_names(recipes.random_dfs_plan(3))


def test_merge_keeps_old_rows_and_replaces_rerun_ones(bench: ModuleType) -> None:
    old = {
        "settings": {"n": 1},
        "dfs_defaults": {"a": 1},
        "runs": [_run("ps", "search", 0, 1.0), _run("dfs", "search", 0, 1.0)],
        "landscape": [{"kind": "ps"}, {"kind": "dfs"}],
        "planted": {"ps": {}, "dfs": {}},
        "budgets": {"ps": 100, "dfs": 600},
    }
    new = {
        "settings": {"n": 1},
        "dfs_defaults": {"a": 1, "start_path": None},  # a field added since, off by default
        "runs": [_run("dfs", "search", 0, 0.5), _run("dfs_r7", "search", 0, 0.875)],
        "landscape": [{"kind": "dfs_r7"}],
        "planted": {"dfs_r7": {}},
        "budgets": {"dfs_r7": 600},
        "static_notes": [],
        "command": "cmd",
        "date": "now",
        "machine": "m",
        "wall_s": 1.0,
        "jobs": 1,
        "seeds": [0],
    }
    out = bench.merge_data(old, new, ["dfs", "dfs_r7"])
    assert [(r["kind"], r["champion"]["slot_agreement"]) for r in out["runs"]] == [
        ("ps", 1.0),
        ("dfs", 0.5),
        ("dfs_r7", 0.875),
    ]
    assert [ls["kind"] for ls in out["landscape"]] == ["ps", "dfs", "dfs_r7"]
    assert out["merged"][0]["kinds"] == ["dfs", "dfs_r7"] and out["budgets"]["ps"] == 100
    goals = {g: ok for g, ok, _ in bench.verdicts(out["runs"])}
    random_goal = [g for g in goals if "dfs_r7" in g]
    assert len(random_goal) == 1 and goals[random_goal[0]] is False  # 0.875 < 0.9: own line
    with pytest.raises(SystemExit):
        bench.merge_data(old, {**new, "dfs_defaults": {"a": 2}}, ["dfs"])
    with pytest.raises(SystemExit):
        bench.merge_data(old, {**new, "settings": {"n": 2}}, ["dfs"])
