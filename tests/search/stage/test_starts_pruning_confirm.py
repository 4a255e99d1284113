"""Issue 17 in the stage's loop, with a stand-in evaluator (no merge, no lm-eval): standard
start points are the first trials and are scored exactly; CMA-ES then starts from the best of
them; a pruned trial is never the champion and keeps its slot; a resumed stage keeps its pruned
trials; the confirm step picks on fitness and confirm questions together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from mergekit_evo.config import OptimizerConfig
from mergekit_evo.search.fleet.budget import Slots
from mergekit_evo.search.fleet.storage import make_storage
from mergekit_evo.search.rundir.files import RunDir
from mergekit_evo.search.scoring.evaluation import Evaluation
from mergekit_evo.search.stage import starts as stage_starts
from mergekit_evo.search.stage.confirm import champion, confirm_stage, pooled
from mergekit_evo.search.stage.context import StageContext
from mergekit_evo.search.stage.loop import best_trial, run_stage
from mergekit_evo.search.stage.pruning import IncumbentBoundPruner
from mergekit_evo.search.stage.stopping import StopRule
from mergekit_evo.search.stage.study import make_sampler, open_study
from mergekit_evo.space.starts import StartPoint

from .test_loop_units import ToySpace

QUIET = {"log": lambda _: None}


def _study(tmp: Path, name: str = "t", pruner: Any = None, sampler: Any = None):
    rd = RunDir(tmp / "run")
    rd.create()
    storage = make_storage(rd.default_storage)
    sampler = sampler or optuna.samplers.RandomSampler(seed=0)
    return rd, open_study(storage, name, sampler, 1, pruner)


def _points(space: ToySpace) -> list[StartPoint]:
    return [
        StartPoint("x0", space.vector.x0(), True),
        StartPoint("corner", np.array([0.9, 0.1]), True),
        StartPoint("far", np.array([0.1, 0.9]), False, note="bounds"),
        StartPoint("impossible", None, False, note="cannot be held"),
    ]


def _quad(recipe: dict[str, Any], number: int, workdir: Path, **_: Any) -> Evaluation:
    a, b = recipe["x"]
    f = 1.0 - (a - 0.8) ** 2 - (b - 0.2) ** 2
    return Evaluation(fitness=f, values=[f], questions=100)


def test_start_points_first_exact_then_cma_from_the_best(tmp_path: Path) -> None:
    rd, study = _study(tmp_path)
    space = ToySpace()
    lines: list[str] = []
    x0s: list[dict[str, float]] = []

    def after(x0: dict[str, float]) -> optuna.samplers.BaseSampler:
        x0s.append(x0)
        return make_sampler(OptimizerConfig(population_size=4, seed=1), 2, x0=x0, sigma0=0.05)

    ctx = StageContext(
        study, space, _quad, rd, StopRule(max_trials=11, population_size=4),
        log=lines.append, starts=_points(space), after_starts=after,
    )  # fmt: skip
    run_stage(ctx)
    trials = study.get_trials(deepcopy=False)
    labels = [t.user_attrs.get(stage_starts.LABEL_ATTR) for t in trials[:3]]
    assert labels == ["x0", "corner", "far"]  # first, in order; the impossible one skipped
    assert trials[1].user_attrs["recipe"]["x"] == pytest.approx([0.9, 0.1])  # exactly
    assert all(not t.user_attrs.get(stage_starts.START_ATTR) for t in trials[3:])
    assert any("start point far: bounds" in line for line in lines)
    assert any("start point impossible: cannot be held (skipped)" in line for line in lines)
    # CMA-ES starts once every start point is told, from the best (corner), with a small step
    assert x0s == [trials[1].params]
    later = np.array([t.user_attrs["recipe"]["x"] for t in trials[3:]])
    assert np.abs(later - [0.9, 0.1]).max() < 0.4  # sampled around the corner, not the centre


def test_a_budget_below_the_start_points_queues_only_what_it_scores(tmp_path: Path) -> None:
    rd, study = _study(tmp_path)
    space = ToySpace()
    lines: list[str] = []
    ctx = StageContext(
        study, space, _quad, rd, StopRule(max_trials=2, population_size=4),
        log=lines.append, starts=_points(space),
        after_starts=lambda x0: optuna.samplers.RandomSampler(seed=0),
    )  # fmt: skip
    run_stage(ctx)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]  # none WAITING
    assert [t.user_attrs[stage_starts.LABEL_ATTR] for t in trials] == ["x0", "corner"]
    assert any("scores the first 2; left out: far" in line for line in lines)


def _pruned_run(tmp_path: Path, max_trials: int, rd_study=None):
    rd, study = rd_study or _study(tmp_path, pruner=IncumbentBoundPruner(z=1.0))

    def evaluate(recipe: dict[str, Any], number: int, workdir: Path, *, on_rung=None):
        good = recipe["x"][0] > 0.5
        assert on_rung is not None  # the loop hands the rung hook to a pruned study
        on_rung(25, 0.95 if number == 1 else (0.8 if good else 0.1))
        on_rung(50, 0.8 if good else 0.1)
        return Evaluation(
            fitness=0.8 if good else 0.1, values=[0.8 if good else 0.1], questions=100
        )

    space = ToySpace()
    pts = [
        StartPoint("good", np.array([0.9, 0.5]), True),
        StartPoint("bad", np.array([0.1, 0.5]), True),
    ]
    ctx = StageContext(
        study, space, evaluate, rd, StopRule(max_trials=max_trials, population_size=4),
        starts=pts, **QUIET,
    )  # fmt: skip
    run_stage(ctx)
    return rd, study


def test_a_pruned_trial_keeps_its_slot_and_never_wins(tmp_path: Path) -> None:
    rd, study = _pruned_run(tmp_path, 8)
    trials = study.get_trials(deepcopy=False)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert trials[1].state == TrialState.PRUNED  # the bad start point: 0.1 cannot beat 0.8
    assert pruned and all(t.user_attrs["questions"] in (25, 50) for t in pruned)
    assert len(trials) == 8 and Slots.of(trials, 8).done == 8  # pruned trials count
    # trial 1 reported 0.95 on its first rung, above every complete trial: still not the best
    assert trials[1].intermediate_values[25] == 0.95
    assert best_trial(study).state == TrialState.COMPLETE
    assert champion([("ps", study)])[1].state == TrialState.COMPLETE


def test_a_resumed_stage_keeps_its_pruned_trials(tmp_path: Path) -> None:
    rd, study = _pruned_run(tmp_path, 6)
    before = {t.number for t in study.get_trials(deepcopy=False) if t.state == TrialState.PRUNED}
    assert before
    storage = make_storage(rd.default_storage)
    again = open_study(
        storage, "t", optuna.samplers.RandomSampler(seed=1), 1, IncumbentBoundPruner()
    )
    _pruned_run(tmp_path, 10, (rd, again))
    after = again.get_trials(deepcopy=False)
    assert len(after) == 10
    assert before <= {t.number for t in after if t.state == TrialState.PRUNED}
    assert all(t.user_attrs.get("questions") for t in after if t.state == TrialState.PRUNED)


def test_confirm_picks_on_fitness_and_confirm_questions_together(tmp_path: Path) -> None:
    rd, study = _study(tmp_path)
    values = {0: 0.60, 1: 0.70, 2: 0.65, 3: 0.70}  # trial 3 repeats trial 1's recipe

    def evaluate(recipe: dict[str, Any], number: int, workdir: Path, **_: Any) -> Evaluation:
        return Evaluation(fitness=values[number], values=[values[number]], questions=200)

    class Fixed(ToySpace):
        def recipe(self, x: np.ndarray) -> dict[str, Any]:
            return {"merge_method": "linear", "x": [round(float(v), 1) for v in x]}

    space = Fixed()
    pts = [
        StartPoint(str(i), np.array(p), True)
        for i, p in enumerate([(0.1, 0.1), (0.3, 0.3), (0.5, 0.5), (0.3, 0.3)])
    ]
    run_stage(StageContext(study, space, evaluate, rd, StopRule(4, 4), starts=pts, **QUIET))
    confirm_scores = {0: 0.9, 1: 0.50, 2: 0.68}
    asked: list[float] = []

    def confirm(recipe: dict[str, Any], workdir: Path) -> tuple[float, int]:
        asked.append(recipe["x"][0])
        number = {0.1: 0, 0.3: 1, 0.5: 2}[recipe["x"][0]]
        return confirm_scores[number], 100

    scores = confirm_stage(study, confirm, 2, rd.work, lambda _: None)
    assert sorted(scores) == [1, 2]  # the top 2 distinct recipes (trial 3 = trial 1's recipe)
    stage, best, value = champion([("ps", study)])
    assert best.number == 2  # 0.65 x 200 + 0.68 x 100 beats 0.70 x 200 + 0.50 x 100
    assert value == pytest.approx((0.65 * 200 + 0.68 * 100) / 300)
    assert pooled(best, scores[2]) == pytest.approx(value)
    confirm_stage(study, confirm, 2, rd.work, lambda _: None)  # resumed: nothing scored again
    assert len(asked) == 2


def test_a_candidate_that_fails_its_confirm_loses_its_place_not_the_search(tmp_path: Path) -> None:
    rd, study = _study(tmp_path)
    space = ToySpace()
    pts = [StartPoint("a", np.array([0.8, 0.2]), True), StartPoint("b", np.array([0.5, 0.5]), True)]
    run_stage(StageContext(study, space, _quad, rd, StopRule(2, 4), starts=pts, **QUIET))
    lines: list[str] = []

    def confirm(recipe: dict[str, Any], workdir: Path) -> tuple[float, int]:
        if recipe["x"][0] > 0.7:
            raise RuntimeError("out of memory")
        return 0.5, 100

    scores = confirm_stage(study, confirm, 2, rd.work, lines.append)
    assert list(scores) == [1]
    assert any("confirm trial     0  FAILED  RuntimeError: out of memory" in x for x in lines)
    assert champion([("ps", study)])[1].number == 1
