"""Run the project's own search (``mergekit_evo.search.run_search``) on a planted problem.

The planted task lives in the problem's folder, so the search config names it through
``fitness.include_path``; everything else (space, ask/tell loop, candidate builder, run
directory) is the project's search, unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mergekit_evo.config import parse_search_config
from mergekit_evo.planted.problem import PlantedProblem
from mergekit_evo.search.run.runner import SearchResult, run_search


@dataclass
class Trial:
    """One evaluation of a search, in the order it ran."""

    number: int  # 1-based evaluation count (PS stage first in PS+DFS)
    stage: str
    fitness: float | None
    recipe: dict[str, Any] | None


@dataclass
class SearchRun:
    """A finished planted search: its result and its evaluations in order."""

    result: SearchResult
    trials: list[Trial]
    seconds: float


def run_planted_search(
    problem: PlantedProblem, out: str | Path, max_trials: int, seed: int, **cfg_extra: Any
) -> SearchRun:
    """Search ``problem`` with the project's search; ``out`` is the run directory.

    An existing run directory of the same search is resumed (the search's own resume), so a
    finished run is read back, not repeated; ``seconds`` is the search's recorded wall time.
    """
    cfg = parse_search_config(problem.search_config(max_trials, seed, **cfg_extra))
    t0 = time.monotonic()
    result = run_search(cfg, out, log=_quiet_log)
    secs = recorded_wall_s(result.rundir)
    return SearchRun(result, read_trials(result.rundir), secs or time.monotonic() - t0)


def _quiet_log(msg: str) -> None:
    """The search's per-trial lines, kept off the benchmark's output."""


def recorded_wall_s(rundir: Path) -> float | None:
    """Wall time the search loop recorded in its studies (summed over PS and DFS stages)."""
    import json

    import optuna

    from mergekit_evo.search.fleet.storage import open_storage

    run = json.loads((Path(rundir) / "run.json").read_text())
    total = 0.0
    for name in run["studies"].values():
        study = optuna.load_study(study_name=name, storage=open_storage(run["storage"]))
        total += float(study.user_attrs.get("wall_s", 0.0))
    return total or None


def read_trials(rundir: Path) -> list[Trial]:
    """Every trial of every stage, in evaluation order, from the run's Optuna storage."""
    import json

    import optuna
    from optuna.trial import TrialState

    from mergekit_evo.search.fleet.storage import open_storage

    run = json.loads((Path(rundir) / "run.json").read_text())
    out: list[Trial] = []
    for stage in ("ps", "dfs"):
        name = run["studies"].get(stage)
        if name is None:
            continue
        study = optuna.load_study(study_name=name, storage=open_storage(run["storage"]))
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            if t.state not in (TrialState.COMPLETE, TrialState.FAIL):
                continue
            fit = t.user_attrs.get("fitness") if t.state == TrialState.COMPLETE else None
            out.append(Trial(len(out) + 1, stage, fit, t.user_attrs.get("recipe")))
    return out
