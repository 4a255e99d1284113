"""What the run decides about its stages: how the budget is split between them, each stage's
stop rule, and (PS+DFS) the PS recipes the DFS stage is built on.

A PS stage is one CMA-ES loop (:func:`mergekit_evo.search.stage.loop.run_stage`); a DFS stage
is a CMA-ES part followed by the polish (:mod:`mergekit_evo.search.stage.dfs_stage`).  In
PS+DFS the PS recipes DFS is built on are fixed once in the DFS study, so a resumed run or
another worker builds the same space.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mergekit_evo.config import SearchConfig
from mergekit_evo.search.stage.stopping import StopRule
from mergekit_evo.search.stage.study import open_study, population_size

if TYPE_CHECKING:
    import optuna

    from mergekit_evo.space.base import Space


def stage_budgets(cfg: SearchConfig) -> tuple[int, int]:
    """(PS trials, DFS trials); one stage gets the whole budget."""
    total = cfg.budget.max_trials
    if cfg.mode != "ps_dfs":
        return total, total
    ps = cfg.ps_dfs.ps_trials
    if ps is None or ps >= total:  # default, or a --max-trials below ps_trials: halve
        ps = max(1, total // 2)
    return ps, max(1, total - ps)


def stop_rule(
    cfg: SearchConfig,
    space: Space,
    max_trials: int,
    best_source: float | None,
    failures_since: datetime | None = None,
) -> StopRule:
    """The config's budget as a stop rule for one stage (patience counts its generations;
    failed trials in a row count from ``failures_since``, this process's start)."""
    pop = population_size(cfg.optimizer, len(space.vector))
    return StopRule.from_budget(cfg.budget, pop, max_trials, best_source, failures_since)


def ps_candidates(ps_studies: list[optuna.Study], k: int) -> list[dict[str, Any]]:
    """The PS recipes the DFS stage is built on: the best ``k`` distinct completed recipes of
    every PS study (a method choice has several), the confirmed ones first by their accuracy
    over fitness and confirm questions (search/stage/confirm.py), then the rest by fitness."""
    from optuna.trial import TrialState

    from mergekit_evo.search.stage.confirm import confirmed, pooled

    ranked: list[tuple[tuple[int, float, int, int], optuna.trial.FrozenTrial]] = []
    for i, study in enumerate(ps_studies):
        scores = confirmed(study)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.user_attrs.get("fitness") is None or not t.user_attrs.get("recipe"):
                continue
            p = pooled(t, scores.get(t.number))
            value = p if p is not None else float(t.user_attrs["fitness"])
            ranked.append(((p is None, -value, i, t.number), t))
    ranked.sort(key=lambda x: x[0])
    done = [t for _, t in ranked]
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for t in done:
        key = json.dumps(t.user_attrs["recipe"], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        out.append(t.user_attrs["recipe"])
        if len(out) == k:
            break
    if not out:
        raise RuntimeError("the PS stage has no completed trial: nothing to build DFS on")
    return out


def dfs_base_recipes(
    storage: optuna.storages.BaseStorage,
    dfs_study_name: str,
    ps_studies: list[optuna.Study],
    k: int,
    *,
    leader: bool,
    poll_s: float = 2.0,
) -> list[dict[str, Any]]:
    """The PS recipes of a PS+DFS search's DFS stage: picked once by the leader, then read."""
    probe = open_study(storage, dfs_study_name, None)
    recipes = probe.user_attrs.get("ps_recipes")
    while not recipes and not leader:  # the search picks them
        time.sleep(poll_s)
        recipes = open_study(storage, dfs_study_name, None).user_attrs.get("ps_recipes")
    if not recipes:
        recipes = ps_candidates(ps_studies, k)
        probe.set_user_attr("ps_recipes", recipes)
    return recipes
