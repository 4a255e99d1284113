"""Slot-flip polish: a steepest-ascent local search around a DFS stage's champion.

Why: CMA-ES treats the indicator array I as continuous, but the fitness only sees its signs.
Once the distribution settles on a path with a wrong layer, the scales bend to compensate and
the search stays there (docs/planted.md).  The polish evaluates every neighbour of the champion
(:meth:`DFSSpace.neighbours`: path moves - a slot flipped, a layer shifted to another repetition
or swapped for another model's layer of the same depth, a run of layers swapped or dropped at
once - and scale moves of +-step, halving
down to ``min_step``) as ordinary trials of the same study, moves to the best if it improves
(trying that same move once more first), and repeats until no neighbour is better.

The trials are enqueued with fixed parameters, so Optuna never asks CMA-ES for them and its
state is untouched.  Everything is derived from the study (the champion, which neighbours were
already tried or queued), so an interrupted polish resumes where it stopped.  The ``search``
process chooses the moves; workers (:func:`serve_polish`) evaluate queued moves alongside it,
so a neighbourhood of ~2T moves spreads over every process of a shared study.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mergekit_evo.search.fleet.budget import counted
from mergekit_evo.search.stage.context import StageContext
from mergekit_evo.search.stage.loop import StageResult, best_trial, run_stage, stage_result
from mergekit_evo.space.dfs import DFSSpace
from mergekit_evo.space.vector import VectorSpace

if TYPE_CHECKING:
    import optuna

POLISH_ATTR = "polish"  # trial user attr: the move that produced the trial
FROM_ATTR = "polish_from"  # trial user attr: number of the champion it was moved from
DONE_ATTR = "polish_done"  # study user attr: why the search process's polish stopped ("" while on)


def polish_budget(share: float, stage_budget: int) -> int:
    """Trials of a DFS stage's budget reserved for the polish (``dfs.polish_share``)."""
    if share <= 0 or stage_budget < 2:
        return 0
    return min(int(round(share * stage_budget)), stage_budget - 1)  # CMA-ES keeps >= 1


def _key(params: dict[str, Any], names: list[str]) -> tuple[float, ...] | None:
    if not all(n in params for n in names):
        return None
    return tuple(round(float(params[n]), 9) for n in names)


def _tried(study: optuna.Study, names: list[str]) -> set[tuple[float, ...]]:
    """Parameter vectors already evaluated, running or queued (any state)."""
    out = set()
    for t in study.get_trials(deepcopy=False):
        params = t.params or t.system_attrs.get("fixed_params") or {}
        k = _key(params, names)
        if k is not None:
            out.add(k)
    return out


def next_moves(
    study: optuna.Study, dfs: DFSSpace, step: float, min_step: float
) -> list[tuple[str, dict[str, float]]]:
    """Untried moves from the champion; [] at a local optimum.

    If the champion came from a polish move, first that move once more (one trial: a pattern
    move, so a scale drifting far needs a trial per step, not a neighbourhood per step).  Then
    block by block: a champion from a scale move gets the scale moves (at the largest step
    that still has untried ones, down to ``min_step``) and the path moves only once the scales
    settled; any other champion (start point, CMA-ES, a path move) gets the path moves first,
    so the path is settled while the scales are still where they were (and the ~2T path moves
    are not repeated after every small scale move).
    """
    vec = dfs.vector
    best = best_trial(study)
    if best is None:
        return []
    x = vec.decode(best.params)
    tried = _tried(study, vec.names)
    parent_no = best.user_attrs.get(FROM_ATTR)
    if parent_no is not None:
        parent = study.get_trials(deepcopy=False)[int(parent_no)]
        params = vec.params(2 * x - vec.decode(parent.params))
        k = _key(params, vec.names)
        if k not in tried and k != _key(vec.params(x), vec.names):
            return [(f"again {best.user_attrs.get(POLISH_ATTR, '')}".strip(), params)]
    path_first = "W." not in str(best.user_attrs.get(POLISH_ATTR, ""))
    if path_first:  # a new path (start point, CMA-ES or a path move): settle the path first
        moves = _untried(dfs.neighbours(x, step), vec, tried, path=True)
        if moves:
            return moves
    s = step
    while s >= min_step - 1e-12:  # scales, from the largest step with untried moves
        moves = _untried(dfs.neighbours(x, s), vec, tried, path=False)
        if moves:
            return moves
        s /= 2
    return _untried(dfs.neighbours(x, step), vec, tried, path=True)


def _untried(
    moves: list[tuple[str, np.ndarray]], vec: VectorSpace, tried: set[Any], path: bool
) -> list[tuple[str, dict[str, float]]]:
    """The path moves (flip, shift, swap) or the scale moves (``W.``) not tried yet."""
    out = []
    for label, y in moves:
        if ("W." not in label) != path:
            continue
        params = vec.params(y)
        k = _key(params, vec.names)
        if k not in tried:
            tried.add(k)
            out.append((label, params))
    return out


def run_polish(ctx: StageContext, *, step: float, min_step: float) -> StageResult:
    """Polish the study's champion until a local optimum or ``ctx.stop`` (the whole stage's
    rule).

    ``ctx.space`` is a :class:`DFSSpace` or a PS+DFS space wrapping one (``space.dfs``).
    """
    study, space, stop, log = ctx.study, ctx.space, ctx.stop, ctx.log
    dfs: DFSSpace = getattr(space, "dfs", space)  # type: ignore[assignment]
    batches = _batches(ctx)
    study.set_user_attr(DONE_ATTR, "")
    while True:
        n_done, fit = counted(study.get_trials(deepcopy=False))
        reason = stop.reason(n_done, fit, 0.0) or ""
        if reason:
            break
        waiting, running = _queued(study)
        if not waiting and running:  # a worker is still scoring a move of this neighbourhood
            time.sleep(ctx.poll_s)
            continue
        if not waiting:
            moves = next_moves(study, dfs, step, min_step)
            if not moves:
                reason = "polish: local optimum (no neighbour of the champion is better)"
                break
            origin = best_trial(study)
            # no more than the budget takes: nothing is left queued (trials.csv, resume) when
            # it stops; a resumed polish with a larger budget recomputes the untried moves
            moves = moves[: stop.max_trials - n_done]
            for label, params in moves:
                attrs = {POLISH_ATTR: label, FROM_ATTR: origin.number if origin else None}
                study.enqueue_trial(params, user_attrs=attrs)
            waiting = len(moves)
            log(f"polish: {waiting} move(s) from trial {origin.number if origin else '-'}")
        reason = _score_queued(batches, n_done, running, waiting)
        if reason:
            break
    study.set_user_attr(DONE_ATTR, reason)
    log(f"stop (polish): {reason}")
    return stage_result(study, reason)


def serve_polish(ctx: StageContext) -> StageResult:
    """A worker's share of the polish: score the moves the ``search`` process queues, until it
    says the polish is over (or ``ctx.stop``, the whole stage's rule, does).

    A worker never asks the sampler here: it only takes a batch while moves are queued, sized to
    what is queued (a race with another process may still let one CMA-ES trial through).
    """
    study, stop, log = ctx.study, ctx.stop, ctx.log
    batches = _batches(ctx)
    while True:
        over = study.user_attrs.get(DONE_ATTR)
        if over:
            reason = over
            break
        n_done, fit = counted(study.get_trials(deepcopy=False))
        reason = stop.reason(n_done, fit, 0.0) or ""
        if reason:
            break
        waiting, running = _queued(study)
        if not waiting:
            time.sleep(ctx.poll_s)
            continue
        reason = _score_queued(batches, n_done, running, waiting)
        if reason:
            break
    log(f"stop (polish): {reason}")
    return stage_result(study, reason)


def _score_queued(batches: StageContext, n_done: int, running: int, waiting: int) -> str:
    """Score the queued moves in one batch sized to them; the reason the polish must end (target,
    patience, wall clock), or "" when the batch just ran out."""
    stop = batches.stop
    cap = n_done + running + min(waiting, stop.max_trials - n_done)
    res = run_stage(replace(batches, stop=replace(stop, max_trials=cap)))
    return "" if res.stop_reason.startswith("budget") else res.stop_reason


def _batches(ctx: StageContext) -> StageContext:
    """The stage's context for its polish batches: run_stage's "stop (...): budget" line, which
    ends every batch, is not logged."""
    log = ctx.log

    def batch_log(msg: str) -> None:
        if not msg.startswith("stop ("):
            log(msg)

    return replace(ctx, log=batch_log)


def _queued(study: optuna.Study) -> tuple[int, int]:
    """Trials WAITING (queued moves) and RUNNING (in some process) in the study."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    return waiting, len(trials) - waiting
