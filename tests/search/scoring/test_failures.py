"""A search never reports success on nothing: runs of failed trials stop it, and a search with no
completed trial exits non-zero without a best.yml, its reasons in trials.csv."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from mergekit_evo.candidate.disk import DiskCandidateBuilder
from mergekit_evo.cli import main
from mergekit_evo.config import OptimizerConfig, load_search_config
from mergekit_evo.search.run.runner import run_search
from mergekit_evo.search.scoring.evaluation import Evaluation
from mergekit_evo.search.scoring.failures import SearchFailed, failure_streak
from mergekit_evo.search.stage.context import StageContext
from mergekit_evo.search.stage.loop import run_stage
from mergekit_evo.search.stage.stopping import StopRule
from tests.search.family import write_config
from tests.search.stage.test_loop_units import ToySpace, _quad, _study


def _rule(max_trials: int, limit: int | None, since: datetime | None = None) -> StopRule:
    return StopRule(
        max_trials=max_trials,
        population_size=4,
        max_consecutive_failures=limit,
        failures_since=since,
    )


def _broken(recipe: dict[str, Any], number: int, workdir: Path) -> Evaluation:
    raise OSError(f"model.safetensors is truncated (trial {number})")


def test_a_run_of_failures_stops_the_stage_with_its_reason(tmp_path):
    rd, study = _study(tmp_path, OptimizerConfig(population_size=4))
    res = run_stage(StageContext(study, ToySpace(), _broken, rd, _rule(40, 3), log=lambda s: None))
    assert res.stop_reason.startswith("failures: 3 trials in a row failed")
    assert res.n_failed == 3 and res.n_complete == 0  # not the 40 of the budget


def test_a_success_resets_the_count(tmp_path):
    rd, study = _study(tmp_path, OptimizerConfig(population_size=4))

    def every_third_ok(recipe: dict[str, Any], number: int, workdir: Path) -> Evaluation:
        if number % 3 != 2:
            raise ValueError("flaky")
        return _quad(recipe, number, workdir)

    res = run_stage(
        StageContext(study, ToySpace(), every_third_ok, rd, _rule(12, 3), log=lambda s: None)
    )
    assert res.stop_reason.startswith("budget")
    assert (res.n_complete, res.n_failed) == (4, 8)


def test_null_limit_never_stops_on_failures(tmp_path):
    rd, study = _study(tmp_path, OptimizerConfig(population_size=4))
    res = run_stage(
        StageContext(study, ToySpace(), _broken, rd, _rule(6, None), log=lambda s: None)
    )
    assert res.stop_reason.startswith("budget") and res.n_failed == 6


def test_streak_skips_interrupted_and_older_trials(tmp_path):
    rd, study = _study(tmp_path, OptimizerConfig(population_size=4))
    run_stage(StageContext(study, ToySpace(), _broken, rd, _rule(4, None), log=lambda s: None))
    trials = study.get_trials(deepcopy=False)
    assert len(failure_streak(trials)) == 4
    assert failure_streak(trials, since=datetime.now() + timedelta(seconds=1)) == []
    # an interrupted trial (killed process) neither breaks nor extends the streak
    killed = study.ask()
    killed.set_user_attr("interrupted", True)
    study.tell(killed, state=TrialState.FAIL)
    assert len(failure_streak(study.get_trials(deepcopy=False))) == 4


class _FailingBuilder(DiskCandidateBuilder):
    """Loads source models (baselines) but no candidate can be built."""

    def build(self, recipe: dict[str, Any], workdir: Path) -> Any:
        raise RuntimeError("shape mismatch in model.layers.0.mlp.up_proj.weight")


def test_search_with_no_completed_trial_fails_without_best_yml(family, tmp_path):
    cfg = load_search_config(
        write_config(tmp_path / "ps.yml", family, "ps", baselines=False, budget={"max_trials": 4})
    )
    run = tmp_path / "run"
    with pytest.raises(SearchFailed) as err:
        run_search(cfg, run, builder=_FailingBuilder(), log=lambda s: None)
    msg = str(err.value)
    assert msg.startswith("search failed: no trial completed (4 failed)")
    assert "4x RuntimeError: shape mismatch in model.layers.0.mlp.up_proj.weight" in msg
    assert not (run / "best.yml").exists()
    rows = list(csv.DictReader((run / "trials.csv").open()))
    assert [r["state"] for r in rows] == ["FAIL"] * 4
    assert all("shape mismatch" in r["fail_reason"] for r in rows)
    assert (run / "metrics.json").exists() and (run / "report.md").exists()


def test_ps_dfs_whose_ps_stage_fails_stops_before_dfs(family, tmp_path, monkeypatch):
    monkeypatch.setattr(DiskCandidateBuilder, "build", _FailingBuilder.build)
    cfg = write_config(
        tmp_path / "h.yml",
        family,
        "ps_dfs",
        baselines=False,
        budget={"max_consecutive_failures": 2},
    )
    r = CliRunner().invoke(main, ["search", str(cfg), "--out", str(tmp_path / "run")])
    assert r.exit_code == 1, r.output
    assert "search stopped: 2 trials in a row failed (budget.max_consecutive_failures 2)" in (
        r.output
    )
    assert "2x RuntimeError: shape mismatch" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "run" / "best.yml").exists()
    rows = list(csv.DictReader((tmp_path / "run" / "trials.csv").open()))
    assert [(r["stage"], r["state"]) for r in rows] == [("ps", "FAIL")] * 2
