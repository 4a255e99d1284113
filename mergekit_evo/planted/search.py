"""Run the project's own search (``mergekit_evo.search``) on a planted problem.

Workaround, on purpose kept here: the search config's ``fitness`` block
(:class:`mergekit_evo.config.FitnessConfig`) has no ``include_path``, and
:class:`mergekit_evo.search.scoring.Scorer` builds its ``FitnessSpec`` without one, so a search
cannot name a task that lives outside the shipped folder and lm-eval's own (the planted task
is written per problem).  ``FitnessSpec`` itself has ``include_path``; this module hands it
through by subclassing ``Search`` and ``Scorer`` - the ask/tell loop, the space, the candidate
builder and the run directory stay the project's.  Once ``FitnessConfig`` gets the field, plain
``run_search`` is used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mergekit_evo.config import FitnessConfig, SearchConfig, parse_search_config
from mergekit_evo.planted.problem import PlantedProblem
from mergekit_evo.search.runner import Search, SearchResult, run_search
from mergekit_evo.search.scoring import Scorer


class _IncludeScorer(Scorer):
    """``Scorer`` whose fitness spec also searches ``include_path`` for tasks."""

    def __init__(self, cfg: FitnessConfig, device: str, include_path: list[str]) -> None:
        from mergekit_evo.fitness import FitnessEvaluator, FitnessSpec, TaskSpec

        self.cfg = cfg
        spec = FitnessSpec(
            tasks=[TaskSpec(name=t.name, weight=t.weight, metric=t.metric) for t in cfg.tasks],
            limit=cfg.limit,
            num_fewshot=cfg.num_fewshot,
            batch_size=cfg.batch_size,
            device=device,
            seed=cfg.seed,
            include_path=include_path,
        )
        self.evaluator = FitnessEvaluator(spec)


class _IncludeSearch(Search):
    def __init__(self, cfg: SearchConfig, out: Path, include_path: list[str], **kw: Any) -> None:
        super().__init__(cfg, out, **kw)
        self.include_path = include_path

    def prepare(self) -> None:
        from mergekit_evo.candidate.disk import DiskCandidateBuilder
        from mergekit_evo.search.runner import _check_same_search

        _check_same_search(self.rundir, self.cfg)
        self.scorer = _IncludeScorer(self.cfg.fitness, self.cfg.device, self.include_path)
        if self.builder is None:
            self.builder = DiskCandidateBuilder(
                device=self.cfg.device, dtype=self.cfg.dtype, random_seed=self.cfg.merge_seed
            )


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
    """Search ``problem`` with the project's search; ``out`` is the run directory."""
    cfg = parse_search_config(problem.search_config(max_trials, seed, **cfg_extra))
    t0 = time.monotonic()
    quiet = _quiet_log
    if "include_path" in FitnessConfig.model_fields:  # the search supports it natively
        fit = cfg.fitness.model_copy(update={"include_path": [problem.tasks_dir]})
        result = run_search(cfg.model_copy(update={"fitness": fit}), out, log=quiet)
    else:
        result = _IncludeSearch(cfg, Path(out), [problem.tasks_dir], log=quiet).run()
    return SearchRun(result, read_trials(result.rundir), time.monotonic() - t0)


def _quiet_log(msg: str) -> None:
    """The search's per-trial lines, kept off the benchmark's output."""


def read_trials(rundir: Path) -> list[Trial]:
    """Every trial of every stage, in evaluation order, from the run's Optuna storage."""
    import json

    import optuna
    from optuna.trial import TrialState

    run = json.loads((Path(rundir) / "run.json").read_text())
    out: list[Trial] = []
    for stage in ("ps", "dfs"):
        name = run["studies"].get(stage)
        if name is None:
            continue
        study = optuna.load_study(study_name=name, storage=run["storage"])
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            if t.state not in (TrialState.COMPLETE, TrialState.FAIL):
                continue
            fit = t.user_attrs.get("fitness") if t.state == TrialState.COMPLETE else None
            out.append(Trial(len(out) + 1, stage, fit, t.user_attrs.get("recipe")))
    return out
