"""Multi-fidelity scoring's stop rule, as an Optuna pruner: a candidate scored on part of its
fitness questions stops once it cannot plausibly beat the stage's best complete trial.

Why a racing rule on a confidence bound rather than Optuna's median or successive-halving
pruners: those compare a candidate with *other candidates'* partial scores, so they stop half of
every rung whatever the numbers say; here the only question is whether this candidate can still
become the champion, and the answer comes from its own accuracy so far and how many questions
it rests on (the Wilson interval, :func:`mergekit_evo.fitness.slices.wilson_upper`). A
candidate that is as good as the incumbent is never stopped early, however many there are.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import optuna
from optuna.pruners import BasePruner
from optuna.trial import TrialState

from mergekit_evo.fitness.slices import wilson_upper

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial


class Pruned(optuna.TrialPruned):
    """A candidate stopped after ``questions`` questions with accuracy ``fitness`` so far."""

    def __init__(self, fitness: float, questions: int, incumbent: float | None) -> None:
        self.fitness = fitness
        self.questions = questions
        self.incumbent = incumbent
        super().__init__(
            f"stopped after {questions} questions: {fitness:.4f} so far cannot plausibly beat "
            f"the best {incumbent:.4f}"
            if incumbent is not None
            else "stopped"
        )


def incumbent(study: Study) -> float | None:
    """The best complete trial's fitness (pruned trials never count: they are partial)."""
    best: float | None = None
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        v = t.user_attrs.get("fitness", t.value)
        if v is not None and math.isfinite(float(v)) and (best is None or float(v) > best):
            best = float(v)
    return best


class IncumbentBoundPruner(BasePruner):
    """Prune when the upper ``z``-sigma bound of the trial's accuracy so far is below the best
    complete trial's fitness. Intermediate values are accuracies; the step is the number of
    questions they rest on."""

    def __init__(self, z: float = 1.0) -> None:
        if not z > 0:
            raise ValueError(f"z must be > 0, got {z}")
        self.z = z

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        best = incumbent(study)
        if best is None:
            return False
        value = trial.intermediate_values[step]
        return wilson_upper(value, step, self.z) < best
