"""The ask/tell loop with a stand-in evaluator (no merge, no lm-eval): failures, stopping,
samplers, multi-objective Pareto output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from mergekit_evo.config import BudgetConfig, OptimizerConfig
from mergekit_evo.search.fleet.storage import make_storage
from mergekit_evo.search.rundir.files import RunDir
from mergekit_evo.search.scoring.evaluation import Evaluation
from mergekit_evo.search.stage.context import StageContext
from mergekit_evo.search.stage.loop import run_stage
from mergekit_evo.search.stage.stopping import StopRule
from mergekit_evo.search.stage.study import make_sampler, open_study
from mergekit_evo.space.vector import Dim, VectorSpace


class ToySpace:
    """Two coefficients; the 'recipe' just carries them."""

    name = "ps"

    def __init__(self, cma: bool = True) -> None:
        self.vector = VectorSpace([Dim("a", 0, 1, 0.5), Dim("b", 0, 1, 0.5)], cma=cma)

    def recipe(self, x: np.ndarray) -> dict[str, Any]:
        return {"merge_method": "linear", "x": [float(v) for v in x]}

    def describe(self, x: np.ndarray) -> dict[str, float]:
        return {"a": float(x[0]), "b": float(x[1])}


def _study(tmp: Path, opt: OptimizerConfig, n_obj: int = 1) -> tuple[RunDir, optuna.Study]:
    rd = RunDir(tmp / "run")
    rd.create()
    storage = make_storage(rd.default_storage)
    return rd, open_study(storage, "t", make_sampler(opt, 2, n_obj), n_obj)


def _quad(recipe: dict[str, Any], number: int, workdir: Path) -> Evaluation:
    a, b = recipe["x"]
    f = -((a - 0.8) ** 2) - (b - 0.2) ** 2
    return Evaluation(fitness=f, values=[f])


def test_failed_candidates_are_failed_trials_and_the_search_goes_on(tmp_path):
    rd, study = _study(tmp_path, OptimizerConfig(population_size=4))

    def flaky(recipe: dict[str, Any], number: int, workdir: Path) -> Evaluation:
        if number in (2, 5):
            raise ValueError(f"cannot merge candidate {number}")
        if number == 7:
            return Evaluation(fitness=float("nan"), values=[float("nan")])
        return _quad(recipe, number, workdir)

    lines: list[str] = []
    res = run_stage(
        StageContext(
            study,
            ToySpace(),
            flaky,
            rd,
            StopRule(max_trials=10, population_size=4),
            log=lines.append,
        )
    )
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert [t.number for t in failed] == [2, 5, 7]
    assert failed[0].user_attrs["fail_reason"] == "ValueError: cannot merge candidate 2"
    assert "non-finite fitness" in failed[2].user_attrs["fail_reason"]
    assert res.n_complete == 7 and res.n_failed == 3  # failures count against the budget
    assert sum("FAILED" in line for line in lines) == 3
    assert all((rd.trials / f"{n:05d}.yml").exists() for n in range(10))


def test_start_point_first_then_every_trial_is_cma(tmp_path):
    rd, study = _study(tmp_path, OptimizerConfig(population_size=4))
    run_stage(
        StageContext(
            study,
            ToySpace(),
            _quad,
            rd,
            StopRule(max_trials=13, population_size=4),
            log=lambda s: None,
        )
    )
    trials = study.get_trials()
    assert trials[0].params == {"a": 0.5, "b": 0.5}
    gens = [t.system_attrs.get("cma:generation") for t in trials[1:]]
    assert gens == [0] * 4 + [1] * 4 + [2] * 4  # no random-sampler batch anywhere


def test_target_fitness_and_patience_stop(tmp_path):
    rd, study = _study(tmp_path, OptimizerConfig(population_size=4))
    res = run_stage(
        StageContext(
            study,
            ToySpace(),
            _quad,
            rd,
            StopRule(max_trials=500, population_size=4, target_fitness=-0.05),
            log=lambda s: None,
        )
    )
    assert "target fitness" in res.stop_reason and res.best_fitness >= -0.05
    rule = StopRule(max_trials=100, population_size=2, patience=2)
    assert rule.reason(8, [1, 2, 3, 3, 3, 3, 3, 3], 0) is not None  # gens 2-3 no better
    assert rule.reason(8, [1, 2, 3, 3, 3, 4, 3, 3], 0) is None
    gain = StopRule(max_trials=100, population_size=2, target_gain=0.1, best_source=2.0)
    assert gain.reason(3, [2.1], 0) is None and gain.reason(3, [2.3], 0) is not None
    # absolute gain (metrics.json's fitness_gain), also from a source that scored 0
    absolute = StopRule.from_budget(BudgetConfig(target_fitness_gain=0.05), 2, best_source=0.0)
    assert absolute.reason(3, [0.04], 0) is None
    assert "target fitness gain reached: +0.0600" in str(absolute.reason(3, [0.06], 0))
    wall = StopRule.from_budget(BudgetConfig(wall_clock_s=5), 4)
    assert wall.reason(1, [0.0], 6.0) is not None and wall.reason(1, [0.0], 1.0) is None
    part = StopRule(max_trials=1, population_size=4, budget_note="; polish next")
    assert part.reason(0, [], 0) is None
    assert part.reason(1, [0.5], 0) == "budget: 1 trials done (max_trials 1); polish next"


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_other_samplers(tmp_path, sampler):
    rd, study = _study(tmp_path, OptimizerConfig(sampler=sampler, seed=1))
    res = run_stage(
        StageContext(
            study,
            ToySpace(cma=False),
            _quad,
            rd,
            StopRule(max_trials=8, population_size=4),
            log=lambda s: None,
        )
    )
    assert res.n_complete == 8
    assert isinstance(study.sampler, (optuna.samplers.TPESampler, optuna.samplers.RandomSampler))


def test_nsga2_two_objectives_pareto_set(tmp_path, monkeypatch):
    from mergekit_evo.search.run.outputs import write_pareto

    def two(recipe: dict[str, Any], number: int, workdir: Path) -> Evaluation:
        a, b = recipe["x"]
        return Evaluation(fitness=(a + b) / 2, values=[a, b])

    rd, study = _study(tmp_path, OptimizerConfig(sampler="nsgaii", population_size=4), 2)
    run_stage(
        StageContext(
            study,
            ToySpace(cma=False),
            two,
            rd,
            StopRule(max_trials=12, population_size=4),
            log=lambda s: None,
        )
    )
    write_pareto(rd, study)
    front = json.loads(rd.pareto.read_text())
    assert front
    vals = [tuple(p["values"]) for p in front]
    for v in vals:  # nobody on the front is dominated by another completed trial
        for t in study.get_trials(states=(TrialState.COMPLETE,)):
            w = tuple(t.values)
            assert not (all(x >= y for x, y in zip(w, v, strict=True)) and w != v)


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_shared_study_requeues_only_stale_trials(tmp_path, monkeypatch, kind):
    """Both embedded storages beat (the journal through our BaseHeartbeat), so a trial whose
    process stopped beating is failed and re-queued, and a fresh one is left alone."""
    import time

    from mergekit_evo.search.fleet import recovery
    from mergekit_evo.search.fleet import storage as storage_mod

    monkeypatch.setenv(storage_mod.HEARTBEAT_ENV, "1")
    monkeypatch.setattr(storage_mod, "GRACE_INTERVALS", 1)
    rd = RunDir(tmp_path / "run")
    rd.create()
    spec = rd.default_storage if kind == "journal" else rd.legacy_storage
    opt = OptimizerConfig(population_size=4)
    study = open_study(make_storage(spec), "t", make_sampler(opt, 2))
    dead = study.ask({"a": optuna.distributions.FloatDistribution(0, 1)})
    study._storage.record_heartbeat(dead._trial_id)
    assert recovery.recover_interrupted(study, all_running=False) == []  # still fresh
    time.sleep(2.2)
    alive = study.ask({"a": optuna.distributions.FloatDistribution(0, 1)})
    study._storage.record_heartbeat(alive._trial_id)
    assert recovery.recover_interrupted(study, all_running=False) == [dead.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[dead.number] == TrialState.FAIL and states[alive.number] == TrialState.RUNNING
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["retry_of"] for t in waiting] == [dead.number]


def test_resume_ignores_sections_the_mode_never_reads(tmp_path, family):
    """A PS run directory resumes after a DFS-only change (e.g. a new DFS default), and a
    change to what the mode does read is still refused."""
    from mergekit_evo.config import ConfigError, load_search_config
    from mergekit_evo.search.run.identity import check_same_search
    from tests.search.family import write_config

    first = load_search_config(write_config(tmp_path / "a.yml", family, "ps"))
    rundir = RunDir(tmp_path / "run")
    rundir.root.mkdir()
    rundir.config.write_text(yaml.safe_dump(first.model_dump(mode="json")))
    dfs_changed = first.model_copy(
        update={"dfs": first.dfs.model_copy(update={"polish_share": 0.25, "repeats": 3})}
    )
    check_same_search(rundir, dfs_changed)  # PS never reads dfs: same search
    ps_changed = first.model_copy(update={"ps": first.ps.model_copy(update={"method": "ties"})})
    with pytest.raises(ConfigError, match="differs from the search"):
        check_same_search(rundir, ps_changed)
