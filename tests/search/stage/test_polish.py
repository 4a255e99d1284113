"""The DFS slot-flip polish on a stand-in fitness (no merge): its moves, that it climbs to the
planted path and scales, that it leaves CMA-ES alone, and that it resumes without repeats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from mergekit_evo.config import DFSConfig, OptimizerConfig
from mergekit_evo.search.fleet.storage import make_storage
from mergekit_evo.search.rundir.files import RunDir
from mergekit_evo.search.scoring.evaluation import Evaluation
from mergekit_evo.search.stage.context import StageContext
from mergekit_evo.search.stage.dfs_stage import run_dfs_stage
from mergekit_evo.search.stage.loop import run_stage
from mergekit_evo.search.stage.polish import POLISH_ATTR, polish_budget, run_polish
from mergekit_evo.search.stage.stopping import StopRule
from mergekit_evo.search.stage.study import make_sampler, open_study
from mergekit_evo.space.dfs import DFSSpace

TARGET_SLOTS = {0, 1, 5, 6, 10, 11}  # A0 A1 B1 B2 A2 A3 over T = 16 (as the planted benchmark)
TARGET_W = np.array([[1.0, 0.6], [1.5, 1.0]])


def _space() -> DFSSpace:
    cfg = DFSConfig(repeats=2, scales="compact", pin_ends=False)
    return DFSSpace(["a", "b"], [4, 4], cfg, sigma0=1 / 6, cma=True)


def _fitness(recipe: dict[str, Any], number: int, workdir: Path) -> Evaluation:
    p = recipe["parameters"]
    on = {t for t, v in enumerate(p["indicators"]) if v > 0}
    w = np.array(p["scales"])
    f = -float(len(on ^ TARGET_SLOTS)) - float(((w - TARGET_W) ** 2).sum())
    return Evaluation(fitness=f, values=[f])


def _study(tmp: Path, n_dims: int) -> tuple[RunDir, optuna.Study]:
    rd = RunDir(tmp / "run")
    rd.create()
    opt = OptimizerConfig(population_size=6, seed=0)
    return rd, open_study(make_storage(rd.default_storage), "t", make_sampler(opt, n_dims))


def test_moves_flip_every_slot_and_step_only_used_scales():
    space = _space()
    x = space.vector.x0()  # model A's path: slots 0-3 at +2 sigma, the rest at -2 sigma
    lo, hi = space.vector.box()
    moves = space.neighbours(x, 0.05)
    flips = [y for label, y in moves if label.startswith("flip")]
    assert len(flips) == 16
    for k, y in enumerate(flips):
        assert (y[k] > 0) != (x[k] > 0) and lo[k] <= y[k] <= hi[k]
    # shifts: A0..A3 each moved to their second-repetition slot (8..11), one at a time
    shifts = {label: y for label, y in moves if label.startswith("shift")}
    assert sorted(shifts) == [f"shift I.{t:05d} I.{t + 8:05d}" for t in range(4)]
    on = np.flatnonzero(space.split(shifts["shift I.00002 I.00010"])[0] > 0).tolist()
    assert on == [0, 1, 3, 10]  # path A0 A1 A3 A2
    # A0..A3 only: the path uses W[A][A] alone, so only it moves (+-0.05 of the range 1.9)
    scale_moves = [label for label, _ in moves if label.startswith("W.")]
    assert scale_moves == ["W.000.000 -0.05", "W.000.000 +0.05"]
    assert space.used_scales(space.split(x)[0]) == {(0, 0)}


def test_polish_climbs_from_model_a_to_the_planted_path(tmp_path):
    space = _space()
    rd, study = _study(tmp_path, len(space.vector))
    quiet = {"log": lambda s: None}
    run_stage(
        StageContext(
            study, space, _fitness, rd, StopRule(max_trials=13, population_size=6), **quiet
        )
    )
    gens = [t.system_attrs.get("cma:generation") for t in study.get_trials()]
    res = run_polish(
        StageContext(
            study, space, _fitness, rd, StopRule(max_trials=400, population_size=6), **quiet
        ),
        step=0.1,
        min_step=0.01,
    )
    best = study.best_trial
    on = {t for t, v in enumerate(best.user_attrs["recipe"]["parameters"]["indicators"]) if v > 0}
    assert on == TARGET_SLOTS
    w = np.array(best.user_attrs["recipe"]["parameters"]["scales"])
    assert np.abs(w - TARGET_W).max() < 0.05
    assert res.stop_reason.startswith("polish: local optimum")
    polished = [t for t in study.get_trials() if POLISH_ATTR in t.user_attrs]
    assert polished and all("cma:generation" not in t.system_attrs for t in polished)
    assert [t.system_attrs.get("cma:generation") for t in study.get_trials()[:13]] == gens


def test_polish_resumes_without_repeating_a_move(tmp_path):
    space = _space()
    rd, study = _study(tmp_path, len(space.vector))
    quiet = {"log": lambda s: None}
    run_stage(
        StageContext(study, space, _fitness, rd, StopRule(max_trials=7, population_size=6), **quiet)
    )
    polish_kw = {"step": 0.1, "min_step": 0.01}
    first = run_polish(
        StageContext(study, space, _fitness, rd, StopRule(30, 6), **quiet), **polish_kw
    )
    assert first.stop_reason.startswith("budget")
    assert not study.get_trials(states=(TrialState.WAITING,))  # nothing left queued
    run_polish(StageContext(study, space, _fitness, rd, StopRule(60, 6), **quiet), **polish_kw)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 60
    keys = [tuple(round(t.params[n], 9) for n in space.vector.names) for t in done[7:]]
    assert len(set(keys)) == len(keys)


def test_dfs_stage_gives_the_polish_its_share_of_one_context(tmp_path):
    """One context for the whole DFS stage: CMA-ES stops at its share of the budget (the
    reason says so), then the polish spends the rest under the same rule."""
    space = _space()
    rd, study = _study(tmp_path, len(space.vector))
    lines: list[str] = []
    ctx = StageContext(study, space, _fitness, rd, StopRule(20, 6), log=lines.append)
    dfs = DFSConfig(polish_share=0.5, polish_step=0.1, polish_min_step=0.01)
    res = run_dfs_stage(ctx, dfs)
    trials = study.get_trials()
    assert [POLISH_ATTR in t.user_attrs for t in trials] == [False] * 10 + [True] * 10
    cma_stop = "stop (dfs): budget: 10 trials done (max_trials 10), the CMA-ES part of the stage's"
    assert any(line.startswith(cma_stop) for line in lines)
    assert res.stop_reason == "budget: 20 trials done (max_trials 20)"


def test_polish_budget_share():
    assert polish_budget(0.0, 600) == 0
    assert polish_budget(0.25, 600) == 150
    assert polish_budget(0.9, 2) == 1  # CMA-ES keeps at least one trial (the start point)
    assert polish_budget(1.0, 600) == 599
    assert polish_budget(0.5, 1) == 0


def test_polish_and_init_options_are_validated():
    import pytest

    from mergekit_evo.config import ConfigError, parse_search_config

    def parse(dfs: dict[str, Any]) -> None:
        parse_search_config(
            {"models": {"a": "a", "b": "b"}, "fitness": {"tasks": ["t"]}, "dfs": dfs}
        )

    parse({"polish_share": 1.0, "polish_step": 0.1, "polish_min_step": 0.1})
    with pytest.raises(ConfigError) as e:
        parse(
            {
                "polish_share": 1.5,
                "polish_step": 0.01,
                "polish_min_step": 0.02,
                "init_indicators": "a",
                "polish_order": "longest",
            }
        )
    msg = str(e.value)
    assert "dfs.polish_order: Input should be 'flips' or 'runs'" in msg
    assert "dfs.polish_share: Input should be less than or equal to 1" in msg
    assert "dfs.polish_min_step: must be <= polish_step (0.01)" in msg
    assert "dfs.init_indicators: Input should be 'model_a', 'paper'" in msg


def test_run_moves_swap_and_drop_several_layers_at_once():
    space = _space()
    x = space.vector.x0()  # A0 A1 A2 A3 (slots 0-3)
    moves = dict(space.neighbours(x, 0.05))

    def on(label: str) -> list[int]:
        return np.flatnonzero(space.split(moves[label])[0] > 0).tolist()

    assert on("swap-run I.00000..I.00003 -> m1") == [4, 5, 6, 7]  # all of A's run for B's
    assert on("swap-run I.00000..I.00001 -> m1") == [2, 3, 4, 5]  # a prefix: A2 A3 B0 B1
    assert on("swap-run I.00002..I.00003 -> m1") == [0, 1, 6, 7]  # a suffix
    assert on("drop-run I.00000..I.00001") == [2, 3]  # path A2 A3
    assert on("drop-run I.00001..I.00003") == [0]
    assert "drop-run I.00000..I.00003" not in moves  # never the whole run
    runs = [label for label in moves if "-run " in label]
    assert len(runs) == len(set(runs)) == 5 + 4  # swaps: 2 prefixes, 2 suffixes, the run; drops


def test_polish_leaves_a_plateau_through_a_run_move(tmp_path):
    """Every single move from A's path is worse; only swapping all of A's layers for B's
    improves (the DFS zoo's shape: VERBS' layers -> MATH's, 5-15% until most are in)."""
    space = _space()
    rd, study = _study(tmp_path, len(space.vector))

    def plateau(recipe: dict[str, Any], number: int, workdir: Path) -> Evaluation:
        on = {t for t, v in enumerate(recipe["parameters"]["indicators"]) if v > 0}
        f = 10.0 if on == {4, 5, 6, 7} else 0.0 if on == {0, 1, 2, 3} else -1.0
        return Evaluation(fitness=f, values=[f])

    quiet = {"log": lambda s: None}
    run_stage(
        StageContext(study, space, plateau, rd, StopRule(max_trials=1, population_size=6), **quiet)
    )
    polish = StageContext(study, space, plateau, rd, StopRule(200, 6), **quiet)
    run_polish(polish, step=0.1, min_step=0.01)
    assert study.best_value == 10.0


def test_coarse_to_fine_visits_every_length_once_middle_first():
    from mergekit_evo.space.dfs import coarse_to_fine

    assert coarse_to_fine(2, 30)[:7] == [16, 8, 23, 4, 12, 19, 27]
    assert sorted(coarse_to_fine(2, 30)) == list(range(2, 31))
    assert coarse_to_fine(2, 2) == [2] and coarse_to_fine(3, 2) == []


def _cut(c: int, a: int = 0, b: int = 1, n: int = 30) -> list[tuple[int, int]]:
    """The path "model a's layers 0..c-1, then model b's layers c..n-1"."""
    return [(a, k) for k in range(c)] + [(b, k) for k in range(c, n)]


def test_polish_order_runs_tries_the_cut_points_of_a_long_run_first():
    """The real-base zoo's DFS (two 30-layer models, A = LANG): the measured good paths are
    "LANG 0-2 / 0-5, then MATH's layers", one run swap from A's own path. In the default order
    they come after ~270 single flips, shifts and short runs (a 24-80 trial polish never saw
    them, docs/zoo-design.md); with ``polish_order: runs`` among the first 30 moves."""
    for order, rank in (("flips", 250), ("runs", 0)):
        cfg = DFSConfig(repeats=2, scales="compact", pin_ends=False, polish_order=order)
        space = DFSSpace(["lang", "math"], [30, 30], cfg, sigma0=1 / 6, cma=True)
        moves = space.neighbours(space.vector.x0(), 0.05)
        paths = [space.layer_path(y) for _, y in moves]
        assert paths.index(_cut(3)) > rank
        if order == "runs":
            assert paths.index(_cut(3)) < 30
            assert all("-run " in label for label, _ in moves[:80])
            assert moves[-1][0].startswith("W.") and moves[-3][0].startswith("flip")


def test_polish_order_runs_swaps_a_run_into_the_repetition_that_keeps_its_place():
    """PS+DFS's DFS stage: A = the PS champion, B = LANG. LANG's layers under the champion's
    must sit one repetition before the champion's (A's slots come first in each repetition):
    from "LANG 0-14, PS 15-29" one run swap reaches "LANG 0-2, PS 3-29" only in place."""
    got = {}
    for order in ("flips", "runs"):
        cfg = DFSConfig(repeats=2, scales="compact", pin_ends=False, polish_order=order)
        space = DFSSpace(["ps", "lang"], [30, 30], cfg, sigma0=1 / 6, cma=True)
        half = space.path_vector(list(range(30, 45)) + list(range(60 + 15, 60 + 30)))
        assert space.layer_path(half) == _cut(15, 1, 0)
        moves = space.neighbours(half, 0.05)
        got[order] = {str(space.layer_path(y)): label for label, y in moves}
    assert str(_cut(3, 1, 0)) not in got["flips"]  # same repetition: PS 3-14 before LANG 0-2
    assert got["runs"][str(_cut(3, 1, 0))] == "swap-run I.00033..I.00044 -> m0 r1"
    # no swap that would scramble the path's order
    assert str([(0, k) for k in range(3, 15)] + [(1, 0), (1, 1), (1, 2)]
               + [(0, k) for k in range(15, 30)]) not in got["runs"]  # fmt: skip
