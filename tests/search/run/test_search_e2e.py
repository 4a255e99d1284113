"""PS, DFS and PS+DFS searches end to end: real merges, real lm-eval fitness, every output."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from mergekit_evo.config import load_search_config
from mergekit_evo.search import hybrid_merge, run_search
from tests.search.family import write_config

MERGEKIT_YAML = Path(sys.executable).parent / "mergekit-yaml"


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def _check_outputs(run: Path, mode: str, n_trials: int) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    for key in (
        "baseline_fitness",
        "ps_best_fitness",
        "dfs_best_fitness",
        "champion_fitness",
        "fitness_improvement",
    ):
        assert key in metrics
    base = metrics["baseline_fitness"]
    assert set(base) == {"math", "lang", "best"}
    assert base["best"] == max(base["math"], base["lang"])
    champion = metrics["champion_fitness"]
    expected_gain = (champion - base["best"]) / abs(base["best"])
    assert metrics["fitness_improvement"] == pytest.approx(expected_gain)
    assert metrics["fitness_gain"] == pytest.approx(champion - base["best"])

    rows = list(csv.DictReader((run / "trials.csv").open()))
    assert len(rows) == n_trials
    assert all(r["state"] == "COMPLETE" for r in rows)
    assert all(float(r["seconds"]) >= 0 for r in rows)
    # the champion: the best completed trial of the final stage, or with a confirm slice the
    # best over fitness and confirm questions together among the confirmed trials of any stage
    confirm = metrics.get("champion_confirm")
    if confirm is None:
        final = [r for r in rows if r["stage"] == ("ps" if mode == "ps" else "dfs")]
        assert max(float(r["fitness"]) for r in final) == pytest.approx(champion)
    else:
        pooled = []
        for stage, scores in confirm["stages"].items():
            for number, c in scores.items():
                (row,) = [r for r in rows if r["stage"] == stage and r["number"] == number]
                pooled.append(_pooled(row, c))
        assert max(pooled) == pytest.approx(confirm["champion"]["pooled"])
        # the champion's fitness is its own, not the stage's best
        stage, number = metrics["champion_stage"], metrics["champion_trial"]
        (row,) = [r for r in rows if r["stage"] == stage and int(r["number"]) == number]
        assert float(row["fitness"]) == pytest.approx(champion)
    # every proposal was written as a MergeKit YAML before it was merged
    for r in rows:
        doc = yaml.safe_load((run / r["yaml"]).read_text())
        assert doc["merge_method"] in ("dare_ties", "dfs", "ps_dfs")
    best = yaml.safe_load((run / "best.yml").read_text())
    assert best["merge_method"] == {"ps": "dare_ties", "dfs": "dfs", "ps_dfs": "ps_dfs"}[mode]
    assert f"{champion:.4f}" in (run / "report.md").read_text()
    return metrics


def _pooled(row: dict, confirm: dict) -> float:
    """Accuracy over a trials.csv row's fitness questions and its confirm questions together."""
    n, m = int(row["questions"]), confirm["questions"]
    return (float(row["fitness"]) * n + confirm["score"] * m) / (n + m)


def _champion_is_the_best_unless_confirmed(metrics: dict, best_key: str) -> None:
    """Without a confirm slice the champion is the final stage's best trial; with one it is
    picked on fitness and confirm questions together, so its fitness may be below the best."""
    if metrics.get("champion_confirm") is None:
        assert metrics[best_key] == metrics["champion_fitness"]
    else:
        best = max(metrics["ps_best_fitness"] or -1e9, metrics["dfs_best_fitness"] or -1e9)
        assert metrics["champion_fitness"] <= best


def _ps_champion_fitness(metrics: dict, rows: list[dict]) -> float:
    """The PS stage's champion: its best pooled accuracy over fitness and confirm questions
    when the stage was confirmed, else its best fitness."""
    ps = [r for r in rows if r["stage"] == "ps"]
    scores = ((metrics.get("champion_confirm") or {}).get("stages") or {}).get("ps")
    if not scores:
        return max(float(r["fitness"]) for r in ps)
    confirmed = [r for r in ps if r["number"] in scores]
    best = max(confirmed, key=lambda r: (_pooled(r, scores[r["number"]]), -int(r["number"])))
    return float(best["fitness"])


def test_ps_search_and_reproduce_with_mergekit_yaml(family, tmp_path):
    cfg = load_search_config(write_config(tmp_path / "ps.yml", family, "ps"))
    run = tmp_path / "run"
    res = run_search(cfg, run, save_champion=True, log=lambda s: None)
    metrics = _check_outputs(run, "ps", 6)
    _champion_is_the_best_unless_confirmed(metrics, "ps_best_fitness")
    assert metrics["dfs_best_fitness"] is None
    assert res.champion_path == run / "champion"
    # the model the search saved is the best fitness's; a champion picked on fitness + confirm
    # that is another trial is rebuilt from its recipe (and says so)
    rows = list(csv.DictReader((run / "trials.csv").open()))
    best_fit = max(rows, key=lambda r: (float(r["fitness"]), -int(r["number"])))
    rebuilt = json.loads((run / "champion.json").read_text()).get("rebuilt", False)
    assert rebuilt == (int(best_fit["number"]) != metrics["champion_trial"])

    # plain mergekit-yaml on best.yml gives the in-search champion's weights exactly
    out = tmp_path / "again"
    subprocess.run(
        [str(MERGEKIT_YAML), str(run / "best.yml"), str(out), "--random-seed", "0"],
        check=True,
        capture_output=True,
    )
    a, b = _tensors(run / "champion"), _tensors(out)
    assert a.keys() == b.keys() and a
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_dfs_search(family, tmp_path):
    cfg = load_search_config(write_config(tmp_path / "dfs.yml", family, "dfs"))
    run_search(cfg, tmp_path / "run", log=lambda s: None)
    metrics = _check_outputs(tmp_path / "run", "dfs", 6)
    assert metrics["ps_best_fitness"] is None
    assert metrics["dfs_best_fitness"] == metrics["champion_fitness"]
    best = yaml.safe_load((tmp_path / "run" / "best.yml").read_text())
    m = 2 + 2  # two 2-layer models
    assert len(best["parameters"]["indicators"]) == m * 2  # T = M * r
    assert len(best["parameters"]["scales"]) == 2  # compact n x n


def test_ps_dfs_search_with_report_split(family, tmp_path):
    report = {
        "tasks": [{"name": "evo_mgsm_direct_en_heldout"}],
        "limit": 2,
        "num_fewshot": 0,
        "max_gen_toks": 4,
    }
    path = write_config(tmp_path / "psdfs.yml", family, "ps_dfs", report=report)
    lines: list[str] = []
    res = hybrid_merge(path, tmp_path / "run", save_champion=True, log=lines.append)
    run = tmp_path / "run"
    assert res.champion_path == run / "champion" and res.best_recipe is not None
    assert res.best_recipe == yaml.safe_load((run / "best.yml").read_text())
    metrics = _check_outputs(run, "ps_dfs", 8)
    _champion_is_the_best_unless_confirmed(metrics, "dfs_best_fitness")
    # the DFS start point is model A's own path = the PS stage's champion (picked on fitness
    # and confirm questions together): the same model, the same fitness
    rows = list(csv.DictReader((run / "trials.csv").open()))
    dfs0 = next(r for r in rows if r["stage"] == "dfs" and r["number"] == "0")
    assert float(dfs0["fitness"]) == pytest.approx(_ps_champion_fitness(metrics, rows), abs=1e-4)
    best = yaml.safe_load((run / "best.yml").read_text())
    assert best["parameters"]["dfs_models"] == ["ps", str(family["lang"])]
    assert best["parameters"]["ps_method"] == "dare_ties"
    # plain mergekit-yaml rebuilds the PS+DFS champion (both stages, one document) exactly
    again = tmp_path / "again"
    subprocess.run(
        [str(MERGEKIT_YAML), str(run / "best.yml"), str(again), "--random-seed", "0"],
        check=True,
        capture_output=True,
    )
    a, b = _tensors(run / "champion"), _tensors(again)
    assert a.keys() == b.keys() and a
    assert all(torch.equal(a[k], b[k]) for k in a)
    rep = metrics["report"]
    assert set(rep["sources"]) == {"math", "lang"}
    assert 0.0 <= rep["champion"]["score"] <= 1.0
    assert (run / "ps_best.yml").exists()
    assert any(line.startswith("trial") and "best" in line for line in lines)

    # a larger budget resumes the DFS stage only, on the same PS recipes, without re-scoring
    more: list[str] = []
    hybrid_merge(path, run, max_trials=10, save_champion=True, log=more.append)
    rows2 = list(csv.DictReader((run / "trials.csv").open()))
    assert [r for r in rows2 if r["stage"] == "ps"] == [r for r in rows if r["stage"] == "ps"]
    assert len([r for r in rows2 if r["stage"] == "dfs"]) == 6
    assert not any(line.startswith("baseline") for line in more)
    assert yaml.safe_load((run / "best.yml").read_text())["models"] == best["models"]


def test_two_objectives_with_nsga2_write_a_pareto_set(family, tmp_path):
    fitness = {
        "tasks": [
            {"name": "evo_gsm8k_search_loglik"},
            {"name": "evo_mgsm_direct_en_search_loglik"},
        ],
        "limit": 2,
        "num_fewshot": 0,
        "objectives": "per_task",
    }
    path = write_config(
        tmp_path / "mo.yml",
        family,
        "ps",
        fitness=fitness,
        optimizer={"sampler": "nsgaii", "population_size": 4},
        budget={"max_trials": 5},
        baselines=False,
    )
    run_search(load_search_config(path), tmp_path / "run", log=lambda s: None)
    run = tmp_path / "run"
    front = json.loads((run / "pareto.json").read_text())
    rows = list(csv.DictReader((run / "trials.csv").open()))
    assert len(rows) == 5 and front
    points = [(float(r["objective_0"]), float(r["objective_1"])) for r in rows]
    for p in front:
        v = tuple(p["values"])
        assert v in points
        assert p["fitness"] == pytest.approx(sum(v) / 2)  # equal weights
        assert not any(a >= v[0] and b >= v[1] and (a, b) != v for a, b in points)


def test_ps_dfs_search_from_a_recipe(family, tmp_path):
    """PS+DFS started from a MergeKit recipe (``mode: ps_dfs`` with ``ps.recipe``): the PS
    stage's trial 0 is the recipe tensor for tensor, the DFS stage embeds the PS champion as
    its PS part, and ``mergekit-yaml best.yml`` rebuilds the champion folder exactly."""
    recipe = {
        "merge_method": "dare_ties",
        "base_model": str(family["base"]),
        "models": [
            {"model": str(family["math"]), "parameters": {"weight": 0.7, "density": 0.6}},
            {"model": str(family["lang"]), "parameters": {"weight": 0.4, "density": 0.8}},
        ],
        "parameters": {"int8_mask": True},
        "dtype": "float32",
    }
    (tmp_path / "recipe.yml").write_text(yaml.safe_dump(recipe))
    cfg = write_config(
        tmp_path / "psdfs.yml",
        family,
        "ps_dfs",
        ps={"recipe": recipe},
        fitness={"function": "tests.search.fitness_fns:mean_logit_norm", "tasks": []},
        dfs={"head_model": "lang"},  # the DFS stage's head from the partner: kept end to end
        budget={"max_trials": 6},
        ps_dfs={"ps_trials": 3},
        baselines=False,
    )
    run = tmp_path / "run"
    res = run_search(load_search_config(cfg), run, save_champion=True, log=lambda s: None)
    assert res.metrics["trials"]["ps"]["complete"] == 3
    assert res.metrics["trials"]["dfs"]["complete"] == 3

    def merged(recipe_path: Path, name: str) -> dict[str, torch.Tensor]:
        out = tmp_path / name
        subprocess.run(
            [str(MERGEKIT_YAML), str(recipe_path), str(out), "--random-seed", "0"],
            check=True,
            capture_output=True,
        )
        return _tensors(out)

    want = merged(tmp_path / "recipe.yml", "want")
    got = merged(run / "trials" / "ps-00000.yml", "trial0")
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    best = yaml.safe_load((run / "best.yml").read_text())
    ps_best = yaml.safe_load((run / "ps_best.yml").read_text())
    assert best["merge_method"] == "ps_dfs" and best["parameters"]["head_model"] == 1
    assert best["models"] == ps_best["models"]
    assert best["parameters"]["ps_method"] == "dare_ties" and best["parameters"]["int8_mask"]
    champion = _tensors(run / "champion")
    rebuilt = merged(run / "best.yml", "rebuilt")
    assert champion.keys() == rebuilt.keys()
    assert all(torch.equal(champion[k], rebuilt[k]) for k in champion)
