"""The write-up's API block, as examples/api_seed_style.py runs it, on the zoo in memory.

One run of the example's ``seed_style`` (small budgets: 1 generation of 2, 1 benchmark question)
feeds every test here; each checks one promise of the API against the run folders it wrote.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from mergekit_evo.api import APIConfigError, CMAESConfig, hybrid_merge, ps_merge_with_cmaes
from tests.search.fitness_fns import mean_logit_norm

REPO = Path(__file__).resolve().parents[2]
KEYS = ("baseline_fitness", "ps_best_fitness", "champion_fitness", "fitness_improvement")


def _example():
    spec = importlib.util.spec_from_file_location(
        "api_seed_style", REPO / "examples" / "api_seed_style.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def block(tmp_path_factory: pytest.TempPathFactory):
    import transformers

    example = _example()
    del example.QUESTIONS[4:]  # the hybrid merge's own fitness on 4 zoo questions
    out = tmp_path_factory.mktemp("seed_style")
    loads: list[str] = []
    real = transformers.AutoModelForCausalLM.from_pretrained.__func__

    def counting(cls, path, *a, **k):
        loads.append(str(path))
        return real(cls, path, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(counting))
        result = example.seed_style(generations=1, population=2, samples=1, out=out)
    return result, out, loads


def _json(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_optimizer_and_ps_merge_return_the_write_ups_shapes(block):
    import transformers

    r, out, _ = block
    coeffs, fitness = r["optimizer"]
    assert coeffs.shape == (3,) and fitness == pytest.approx(
        -np.sum((coeffs - [0.2, 0.5, 0.3]) ** 2)
    )
    merged = r["ps_merge"]
    merged_model, coeffs, fitness = merged
    assert isinstance(merged_model, transformers.PreTrainedModel)
    assert coeffs.shape == (3,) and coeffs.sum() == pytest.approx(1.0)  # linear: weights sum 1
    assert fitness == _json(out / "ps")["champion_fitness"]
    # the recipe beside the model: the champion's MergeKit recipe, as best.yml holds it
    best = yaml.safe_load((out / "ps" / "best.yml").read_text())
    assert merged.recipe["merge_method"] == best["merge_method"] == "linear"
    weights = [m["parameters"]["weight"] for m in best["models"]]
    assert weights == pytest.approx(coeffs.tolist())
    assert merged.run_dir == out / "ps" and (out / "ps" / "champion" / "config.json").is_file()


def test_in_memory_sources_are_not_loaded_again(block):
    r, out, loads = block
    sources = str(out / "ps" / "sources")
    # the PS search's sources are the objects given; only the working copy PS writes into loads
    assert len([p for p in loads if p.startswith(sources)]) == 1
    assert {p.name for p in (out / "ps" / "sources").iterdir()} == {"base", "math", "verbs"}
    assert all(str(m.device) == "cpu" for m in r["models"])  # the caller's models stay put


def test_benchmark_scores_of_the_merged_model(block):
    r, _, _ = block
    assert 0.0 <= r["ps_accuracy"] <= 1.0
    mgsm = r["ps_mgsm"]
    assert mgsm["task"] == "evo_mgsm_direct_ja" and mgsm["total"] == 1
    assert mgsm["accuracy"] == mgsm["correct"] / mgsm["total"]


@pytest.mark.parametrize("which", ["hybrid", "pipeline"])
def test_metrics_agree_with_metrics_json(block, which):
    r, out, _ = block
    if which == "hybrid":
        champion, metrics = r["hybrid"]
    else:
        champion, metrics = r["pipeline_champion"], r["pipeline"].get_metrics()
    saved = _json(out / which)
    assert metrics["run_dir"] == str(out / which)
    assert metrics["baseline_fitness"] == saved["baseline_fitness"]["best"]
    assert metrics["baseline_fitness_by_model"] == {
        k: v for k, v in saved["baseline_fitness"].items() if k != "best"
    }
    for key in KEYS[1:] + ("fitness_gain", "dfs_best_fitness"):
        assert metrics[key] == saved[key], key
    gain = metrics["champion_fitness"] - metrics["baseline_fitness"]
    assert metrics["fitness_gain"] == pytest.approx(gain)
    if metrics["baseline_fitness"]:
        assert metrics["fitness_improvement"] == pytest.approx(gain / metrics["baseline_fitness"])
    assert saved["mode"] == "ps_dfs" and champion.config.num_hidden_layers >= 1


def test_pipeline_config_reached_the_search(block):
    r, out, _ = block
    cfg = yaml.safe_load((out / "pipeline" / "config.yml").read_text())
    assert cfg["mode"] == "ps_dfs" and cfg["ps_dfs"]["ps_candidates_multiplier"] == 3
    assert cfg["fitness"]["tasks"][0]["name"] == "evo_gsm8k_search" and cfg["fitness"]["limit"] == 1
    assert cfg["optimizer"]["population_size"] == 2 and cfg["budget"]["max_trials"] == 2 * 3
    # the champion is picked over both stages on fitness + confirm questions (issue 17): the
    # DFS stage's ps_dfs recipe, or the PS stage's own recipe when that pools better
    metrics = json.loads((out / "pipeline" / "metrics.json").read_text())
    from_dfs = metrics["champion_stage"] == "dfs"
    assert (r["pipeline"].recipe["merge_method"] == "ps_dfs") == from_dfs


def test_a_rerun_into_the_same_folder_resumes(block):
    r, out, _ = block
    m1, m2, m3 = r["models"]
    rows = (out / "hybrid" / "trials.csv").read_text()
    example = _example()
    del example.QUESTIONS[4:]
    tok = r["ps_merge"].tokenizer
    again = hybrid_merge(
        base_models=[m1, m2, m3], fitness_fn=example.zoo_accuracy, tokenizer=tok,
        config=CMAESConfig(population_size=2, sigma=0.3, max_generations=1), out=out / "hybrid",
        log=None,
    )  # fmt: skip
    assert (out / "hybrid" / "trials.csv").read_text() == rows  # nothing scored twice
    assert again[1]["champion_fitness"] == r["hybrid"][1]["champion_fitness"]


def test_folders_a_python_fitness_and_bad_settings(block, tmp_path):
    r, out, _ = block
    zoo = REPO / "fixtures" / "zoo"
    with pytest.raises(APIConfigError, match="CMAESConfig.tolerance = 0.1"):
        ps_merge_with_cmaes([zoo / "math"], mean_logit_norm, CMAESConfig(tolerance=0.1),
                            out=tmp_path / "no")  # fmt: skip
    with pytest.raises(APIConfigError, match="ps.method: unknown merge method 'linaer'"):
        ps_merge_with_cmaes([zoo / "math", r["models"][2]], mean_logit_norm, method="linaer",
                            out=tmp_path / "no")  # fmt: skip
    assert not (tmp_path / "no").exists()  # refused before anything was written
    res = ps_merge_with_cmaes(
        [zoo / "math", zoo / "verbs"], lambda m, t: {"accuracy": mean_logit_norm(m, t)},
        CMAESConfig(population_size=2, max_generations=1), base_model=zoo / "base",
        method="task_arithmetic", log=None,
    )  # fmt: skip
    model, coeffs, fitness = res
    assert coeffs.shape == (2,) and res.run_dir.is_dir()  # a temporary run folder
    assert fitness == _json(res.run_dir)["champion_fitness"]
    assert model.config.num_hidden_layers == 8
