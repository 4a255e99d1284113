"""A fitness of the user's own: a Python callable in place of lm-eval tasks."""

from __future__ import annotations

import csv
import runpy
import sys
from pathlib import Path

import pytest
import yaml

from mergekit_evo.config import ConfigError, parse_search_config, resolve_paths
from mergekit_evo.search import run_search
from tests.search import fitness_fns
from tests.search.family import make_family

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def fam(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_family(tmp_path_factory.mktemp("callable"))


def _cfg(fam: dict[str, Path], fitness: dict, trials: int = 3, **extra: object):
    doc = {
        "mode": "ps",
        "models": {"math": str(fam["math"]), "lang": str(fam["lang"])},
        "base_model": str(fam["base"]),
        "ps": {"method": "dare_ties"},
        "fitness": fitness,
        "optimizer": {"population_size": 4, "seed": 0},
        "budget": {"max_trials": trials},
        **extra,
    }
    return resolve_paths(parse_search_config(doc))


def _rows(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run / "trials.csv").open()))


def test_api_callable_scores_every_trial_and_resumes(fam, tmp_path):
    calls: list[float] = []

    def spread(model, tokenizer) -> float:
        v = fitness_fns.mean_logit_norm(model, tokenizer)
        calls.append(v)
        return v

    cfg = _cfg(fam, {"function": "tests.search.fitness_fns:mean_logit_norm"})
    run = tmp_path / "run"
    res = run_search(cfg, run, fitness_fn=spread, log=lambda _: None)
    rows = _rows(run)
    assert len(rows) == 3 and all(r["state"] == "COMPLETE" for r in rows)
    # baselines (2 sources) then 3 trials, each scored by the callable, its value the fitness
    assert len(calls) == 5
    assert [float(r["fitness"]) for r in rows] == pytest.approx(calls[2:])
    assert res.metrics["champion_fitness"] == pytest.approx(max(calls[2:]))
    assert (run / "report.html").exists()
    # resume with a larger budget: the same function by name, three more trials, no rescoring
    cfg2 = cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"max_trials": 5})})
    run_search(cfg2, run, log=lambda _: None)  # imports fitness.function this time
    assert len(_rows(run)) == 5
    other = cfg2.model_copy(
        update={
            "fitness": cfg2.fitness.model_copy(
                update={"function": "tests.search.fitness_fns:two_numbers"}
            )
        }
    )
    with pytest.raises(ConfigError) as e:
        run_search(other, run, log=lambda _: None)
    assert "fitness" in str(e.value)


def test_dict_result_weighted_by_the_named_keys(fam, tmp_path):
    fitness = {
        "function": "tests.search.fitness_fns:two_numbers",
        "tasks": [{"name": "spread", "weight": 3}, {"name": "half", "weight": 1}],
    }
    run = tmp_path / "run"
    run_search(_cfg(fam, fitness, trials=2, baselines=False), run, log=lambda _: None)
    recipe = yaml.safe_load((run / "trials" / "00000.yml").read_text())
    assert recipe["merge_method"] == "dare_ties"
    r = _rows(run)[0]
    from mergekit_evo.candidate.disk import DiskCandidateBuilder

    cand = DiskCandidateBuilder().build(recipe, tmp_path / "w")
    spread = fitness_fns.mean_logit_norm(cand.model, cand.tokenizer)
    assert float(r["fitness"]) == pytest.approx((3 * spread + spread / 2) / 4, rel=1e-5)


def test_bad_functions_are_named(fam, tmp_path):
    with pytest.raises(ConfigError) as e:
        run_search(_cfg(fam, {"function": "tests.search.fitness_fns:nope"}), tmp_path / "a")
    assert e.value.errors[0][0] == "fitness.function" and "cannot import" in str(e.value)
    assert not (tmp_path / "a").exists()
    with pytest.raises(ConfigError) as e:
        _cfg(fam, {"function": "no colon"})
    assert "module:callable" in str(e.value)
    with pytest.raises(ConfigError) as e:
        _cfg(fam, {"limit": 3})
    assert "tasks" in str(e.value) and "function" in str(e.value)
    # a candidate whose fitness is no number fails its trial with the reason, not the search
    run = tmp_path / "b"
    bad = {"function": "tests.search.fitness_fns:not_a_number"}
    cfg = _cfg(fam, bad, baselines=False, budget={"max_trials": 2})
    with pytest.raises(Exception):  # noqa: B017 - no completed trial: the search ends in error
        run_search(cfg, run, log=lambda _: None)
    assert "expected a number" in (run / "trials.csv").read_text()


def test_example_script_runs_on_the_zoo(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["python_fitness.py", "--out", str(tmp_path / "r"),
                                      "--max-trials", "2", "--questions", "5"])  # fmt: skip
    runpy.run_path(str(REPO / "examples" / "python_fitness.py"), run_name="__main__")
    rows = _rows(tmp_path / "r")
    assert len(rows) == 2 and all(0.0 <= float(r["fitness"]) <= 1.0 for r in rows)


def test_hybrid_merge_takes_a_fitness_fn_without_tasks(fam, tmp_path):
    from mergekit_evo.search import hybrid_merge

    doc = {
        "models": {"math": str(fam["math"]), "lang": str(fam["lang"])},
        "base_model": str(fam["base"]),
        "ps": {"method": "dare_ties"},
        "dfs": {"repeats": 1, "scales": "shared"},
        "optimizer": {"population_size": 4, "seed": 0},
        "budget": {"max_trials": 2},
        "baselines": False,
    }
    res = hybrid_merge(doc, tmp_path / "run", fitness_fn=fitness_fns.mean_logit_norm,
                       save_champion=False, log=lambda _: None)  # fmt: skip
    assert res.best_recipe is not None and res.best_recipe["merge_method"] == "ps_dfs"
    cfg = yaml.safe_load((tmp_path / "run" / "config.yml").read_text())
    assert cfg["fitness"]["function"] == "tests.search.fitness_fns:mean_logit_norm"
