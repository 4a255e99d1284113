"""A DFS stage: CMA-ES for its share of the budget, then the polish (``dfs.polish_share``) for
the rest.  The ``search`` process chooses the polish moves; workers score the queued ones."""

from __future__ import annotations

from dataclasses import replace

from mergekit_evo.config import DFSConfig
from mergekit_evo.search.stage.context import StageContext
from mergekit_evo.search.stage.loop import StageResult, run_stage
from mergekit_evo.search.stage.polish import polish_budget, run_polish, serve_polish


def run_dfs_stage(ctx: StageContext, dfs: DFSConfig) -> StageResult:
    """CMA-ES for the stage's share of ``ctx.stop.max_trials``, then the polish for the rest
    (under ``ctx.stop``, the whole stage's rule)."""
    budget = ctx.stop.max_trials
    n_polish = polish_budget(dfs.polish_share, budget)
    # the standard start points are the CMA-ES part's first trials: the polish starts from
    # the best of them, so they all get scored whatever the share
    n_starts = sum(p.x is not None for p in ctx.starts or [])
    n_polish = min(n_polish, max(0, budget - n_starts))
    cma = ctx
    if n_polish:
        note = (
            f", the CMA-ES part of the stage's {budget} (dfs.polish_share "
            f"{dfs.polish_share:g}); the polish gets the rest"
        )
        cma = replace(ctx, stop=replace(ctx.stop, max_trials=budget - n_polish, budget_note=note))
    res = run_stage(cma)
    if not (n_polish and res.stop_reason.startswith("budget")):
        return res
    if ctx.leader:  # chooses the moves
        return run_polish(ctx, step=dfs.polish_step, min_step=dfs.polish_min_step)
    return serve_polish(ctx)  # scores queued moves alongside it
