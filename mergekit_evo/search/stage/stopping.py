"""When a search stage stops: budget, patience, target fitness or gain, wall clock.

Everything is computed from the study's trials, so a resumed (or multi-worker) search stops
at the same point it would have without the interruption.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mergekit_evo.config import BudgetConfig


@dataclass(frozen=True)
class StopRule:
    """The stage's stopping conditions; ``None`` disables one."""

    max_trials: int
    population_size: int
    patience: int | None = None
    target_fitness: float | None = None
    target_gain: float | None = None
    target_fitness_gain: float | None = None  # absolute: best - best_source
    best_source: float | None = None
    wall_clock_s: float | None = None
    budget_note: str = ""  # appended to the budget reason (e.g. what runs after this part)
    # stop after this many failed trials in a row, counting trials started since failures_since
    # (this process's start: a resume after fixing the cause starts a fresh count)
    max_consecutive_failures: int | None = None
    failures_since: datetime | None = None

    @classmethod
    def from_budget(
        cls,
        budget: BudgetConfig,
        population_size: int,
        max_trials: int | None = None,
        best_source: float | None = None,
        failures_since: datetime | None = None,
    ) -> StopRule:
        return cls(
            max_trials=max_trials if max_trials is not None else budget.max_trials,
            population_size=population_size,
            patience=budget.patience,
            target_fitness=budget.target_fitness,
            target_gain=budget.target_gain,
            target_fitness_gain=budget.target_fitness_gain,
            best_source=best_source,
            wall_clock_s=budget.wall_clock_s,
            max_consecutive_failures=budget.max_consecutive_failures,
            failures_since=failures_since,
        )

    def reason(self, n_done: int, fitness: Sequence[float], elapsed_s: float) -> str | None:
        """Why to stop now (a sentence), or ``None`` to go on.

        ``n_done``: finished trials that count against the budget (complete + failed
        candidates); ``fitness``: completed trials' fitness in trial order.
        """
        if n_done >= self.max_trials:
            return f"budget: {n_done} trials done (max_trials {self.max_trials}){self.budget_note}"
        if self.wall_clock_s is not None and elapsed_s >= self.wall_clock_s:
            return f"wall clock: {elapsed_s:.0f} s >= {self.wall_clock_s:.0f} s"
        best = max(fitness) if fitness else None
        if best is not None and self.target_fitness is not None and best >= self.target_fitness:
            return f"target fitness reached: {best:.4f} >= {self.target_fitness}"
        if (
            best is not None
            and self.target_gain is not None
            and self.best_source is not None
            and self.best_source != 0
        ):
            gain = (best - self.best_source) / abs(self.best_source)
            if gain >= self.target_gain:
                return f"target gain reached: {gain:+.1%} over the best source"
        if (
            best is not None
            and self.target_fitness_gain is not None
            and self.best_source is not None
            and best - self.best_source >= self.target_fitness_gain
        ):
            gain = best - self.best_source
            return f"target fitness gain reached: {gain:+.4f} over the best source"
        if self.patience is not None:
            pop = self.population_size
            n_gen = len(fitness) // pop
            if n_gen > self.patience:
                cut = (n_gen - self.patience) * pop
                before = max(fitness[:cut])
                after = max(fitness[cut : n_gen * pop])
                if after <= before:
                    return (
                        f"patience: no improvement in the last {self.patience} generations "
                        f"(best {before:.4f})"
                    )
        return None
