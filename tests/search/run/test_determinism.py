"""Same config, same seed, on CPU: the same trials (parameters and fitness, in order) and the
same champion, so a result can be reproduced and a resume compared."""

from __future__ import annotations

from pathlib import Path

from optuna.trial import TrialState

from mergekit_evo.config import load_search_config
from mergekit_evo.search.run.runner import run_search
from tests.search.family import write_config
from tests.search.fleet.test_resume_after_sigkill import _study


def _trials(run: Path) -> list[tuple[int, str, dict[str, float], float | None]]:
    return [
        (t.number, t.state.name, t.params, t.user_attrs.get("fitness"))
        for t in _study(run).get_trials(deepcopy=False)
    ]


def test_same_seed_same_trials_and_champion(family, tmp_path):
    cfg = load_search_config(
        write_config(tmp_path / "ps.yml", family, "ps", baselines=False, budget={"max_trials": 6})
    )
    a = run_search(cfg, tmp_path / "a", log=lambda s: None)
    b = run_search(cfg, tmp_path / "b", log=lambda s: None)
    ta, tb = _trials(tmp_path / "a"), _trials(tmp_path / "b")
    assert len(ta) == 6 and all(t[1] == TrialState.COMPLETE.name for t in ta)
    assert ta == tb
    assert a.best_recipe == b.best_recipe
    assert a.metrics["champion_trial"] == b.metrics["champion_trial"]
    assert (tmp_path / "a" / "best.yml").read_text() == (tmp_path / "b" / "best.yml").read_text()
    # a different seed samples different points (the test can fail)
    other = cfg.model_copy(update={"optimizer": cfg.optimizer.model_copy(update={"seed": 1})})
    run_search(other, tmp_path / "c", log=lambda s: None)
    tc = _trials(tmp_path / "c")
    assert [t[2] for t in tc[1:]] != [t[2] for t in ta[1:]]  # trial 0 is the start point
