"""A stage's standard start points (:mod:`mergekit_evo.space.starts`) in its study.

The ``search`` process enqueues them when the stage's study is new (``enqueue_trial``: they
are the first trials, counted in the budget, labelled ``start:<name>`` in trials.csv); every
process scores them from the queue. While any is unscored the stage asks nothing else: CMA-ES
must start from the best of them, so its sampler is made only once all are told (from the
study alone, so a resumed run and every worker make the same one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mergekit_evo.space.starts import StartPoint

if TYPE_CHECKING:
    import optuna

START_ATTR = "start_point"  # trial user attr: True on every start point (trial 0 too)
LABEL_ATTR = "start_label"  # trial user attr: which start point (x0, source:math, own:a, ...)

#: makes the stage's sampler once the start points are scored: (best start's params) -> sampler
AfterStarts = Callable[[dict[str, Any]], "optuna.samplers.BaseSampler"]


def enqueue(
    study: optuna.Study,
    space: Any,
    starts: list[StartPoint],
    log: Callable[[str], None],
    budget: int | None = None,
) -> None:
    """Queue every start point the space can hold; one line for each it cannot hold exactly.

    A budget smaller than the start points takes the first ``budget`` of them (one line says
    which are left out): a queued trial the budget never reaches would sit WAITING forever."""
    held_points = []
    for p in starts:
        if p.note:
            held = "skipped" if p.x is None else "the nearest point it can is scored instead"
            log(f"start point {p.label}: {p.note} ({held})")
        if p.x is not None:
            held_points.append(p)
    if budget is not None and len(held_points) > budget:
        left = ", ".join(p.label for p in held_points[budget:])
        log(f"start points: a budget of {budget} scores the first {budget}; left out: {left}")
        held_points = held_points[:budget]
    for p in held_points:
        study.enqueue_trial(p.params(space), user_attrs={START_ATTR: True, LABEL_ATTR: p.label})


def unscored(trials: list[optuna.trial.FrozenTrial]) -> tuple[int, int]:
    """Start points (waiting in the queue, running somewhere) not yet told."""
    from optuna.trial import TrialState

    waiting = running = 0
    for t in trials:
        if t.user_attrs.get(START_ATTR):
            waiting += t.state == TrialState.WAITING
            running += t.state == TrialState.RUNNING
    return waiting, running


def best_start(trials: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial | None:
    """The best completed start point (ties: the earliest)."""
    from optuna.trial import TrialState

    best, best_f = None, -math.inf
    for t in sorted(trials, key=lambda t: t.number):
        f = t.user_attrs.get("fitness")
        if t.user_attrs.get(START_ATTR) and t.state == TrialState.COMPLETE and f is not None:
            if float(f) > best_f:
                best, best_f = t, float(f)
    return best
