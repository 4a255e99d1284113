"""A stage's budget, shared by every process on its study: trial slots and the wall clock.

Slots: the first ``max_trials`` trials by number that hold one (finished candidates, trials
running anywhere, queued ones) are the budget.  A process asks only while a slot is free or a
queued trial holds one; right after ``ask`` it checks that its trial got a slot and otherwise
gives it back unevaluated (failed with ``over_budget``, its fixed parameters queued again).
Trial numbers are assigned atomically by the storage (RDB locks the study row, the journal
orders its log), so every process agrees on the ranking, and evaluations are exactly
``max_trials`` however many processes ask at once.  Failed-as-interrupted trials (their retry
takes the slot) and given-back ones hold none.

Wall clock: each process publishes the stage's running time in the study (``wall_s``) and reads
the largest value any process published, so a worker that joined late stops with the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mergekit_evo.search.fleet.recovery import ORIGIN_ATTRS

if TYPE_CHECKING:
    import optuna

OVER_BUDGET = "over_budget"
WALL_ATTR = "wall_s"


def fitness_of(t: optuna.trial.FrozenTrial) -> float | None:
    """A trial's scalar fitness (the ``fitness`` attr, else its single objective value)."""
    v = t.user_attrs.get("fitness")
    if v is None and t.values is not None and len(t.values) == 1:
        v = t.values[0]
    return None if v is None else float(v)


def holds_slot(t: optuna.trial.FrozenTrial) -> bool:
    """Does ``t`` use up one trial of the budget (done, running or queued)?  A PRUNED trial
    does: it is a candidate scored on part of its questions (multi-fidelity)."""
    from optuna.trial import TrialState

    if t.state == TrialState.FAIL:
        return not (t.user_attrs.get("interrupted") or t.user_attrs.get(OVER_BUDGET))
    return True


@dataclass
class Slots:
    """The budget's slots as the study holds them now."""

    max_trials: int
    taken: list[optuna.trial.FrozenTrial] = field(default_factory=list)  # by trial number
    done: int = 0  # finished trials that count (completed, pruned and failed candidates)
    fitness: list[float] = field(default_factory=list)  # completed fitness, in trial order

    @classmethod
    def of(cls, trials: list[optuna.trial.FrozenTrial], max_trials: int) -> Slots:
        from optuna.trial import TrialState

        s = cls(max_trials)
        for t in sorted(trials, key=lambda t: t.number):
            if not holds_slot(t):
                continue
            s.taken.append(t)
            if t.state.is_finished():
                s.done += 1
            if t.state == TrialState.COMPLETE and (f := fitness_of(t)) is not None:
                s.fitness.append(f)
        return s

    def can_ask(self) -> bool:
        """A slot is free, or a queued trial holds one (``ask`` pops the oldest queued)."""
        from optuna.trial import TrialState

        budget = self.taken[: self.max_trials]
        return len(self.taken) < self.max_trials or any(
            t.state == TrialState.WAITING for t in budget
        )

    def has(self, number: int) -> bool:
        """Is trial ``number`` within the budget?"""
        return any(t.number == number for t in self.taken[: self.max_trials])


def counted(trials: list[optuna.trial.FrozenTrial]) -> tuple[int, list[float]]:
    """(finished trials that count against the budget, completed fitness in trial order)."""
    s = Slots.of(trials, 0)
    return s.done, s.fitness


def claim(study: optuna.Study, trial: optuna.trial.Trial, max_trials: int) -> bool:
    """Keep the trial just asked if it got a slot; else give it back and return False."""
    from optuna.trial import TrialState

    if Slots.of(study.get_trials(deepcopy=False), max_trials).has(trial.number):
        return True
    frozen = study._storage.get_trial(trial._trial_id)
    trial.set_user_attr(OVER_BUDGET, True)
    trial.set_user_attr("fail_reason", "over budget: other processes took the last slots")
    study.tell(trial, state=TrialState.FAIL)
    fixed = frozen.system_attrs.get("fixed_params")
    if fixed:  # a queued proposal (retry, polish move) stays queued for a later slot
        attrs = {k: frozen.user_attrs[k] for k in ORIGIN_ATTRS if k in frozen.user_attrs}
        if "retry_of" in frozen.user_attrs:
            attrs["retry_of"] = frozen.user_attrs["retry_of"]
        study.enqueue_trial(fixed, user_attrs=attrs)
    return False


class StageClock:
    """Wall-clock seconds the search has run, as every process of the study agrees."""

    def __init__(self, study: optuna.Study, offset_s: float = 0.0) -> None:
        self.study = study
        self.offset_s = offset_s  # earlier stages' seconds (the budget is for the search)
        self.base = float(study.user_attrs.get(WALL_ATTR, 0.0))
        self.t0 = time.monotonic()

    def stage_s(self) -> float:
        mine = self.base + (time.monotonic() - self.t0)
        return max(mine, float(self.study.user_attrs.get(WALL_ATTR, 0.0)))

    def elapsed_s(self) -> float:
        return self.offset_s + self.stage_s()

    def publish(self) -> None:
        self.study.set_user_attr(WALL_ATTR, self.stage_s())
