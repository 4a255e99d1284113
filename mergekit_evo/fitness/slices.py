"""Which questions of each task a score uses: the fitness set, its rungs, and the confirm slice.

A search split is read in order (lm-eval's doc order, the split file's line order):

    [0, n)                 the fitness questions (``fitness.limit`` per task, or the whole split)
    [0, n1) [n1, n2) ...   the multi-fidelity rungs: growing prefixes of the fitness questions,
                           each scored once (a candidate that survives rung k scores only the
                           questions rung k+1 adds)
    [n, n + c)             the confirm slice: never part of any candidate's fitness, used once
                           per stage to re-score its top candidates (the winner's curse)

The report split is another task (another file), so it is disjoint from both by construction.
Scores over several slices combine exactly for metrics aggregated by a plain mean (accuracy,
exact match): the mean over the union is the count-weighted mean of the slices' means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

#: Confirm questions per task when the config leaves the number to us (``confirm.questions``
#: unset): what is left of the search split after the fitness questions, at most this many and
#: at most as many as the fitness scores (re-scoring ``top_k`` candidates on more questions than
#: the search gave each would cost more than the search it checks: a 4-question notebook run is
#: not made to generate 200 more answers five times).
AUTO_CONFIRM = 200


@dataclass(frozen=True)
class QuestionPlan:
    """Per task: the fitness range, its rung boundaries, and the confirm range."""

    fitness: dict[str, range]
    rungs: list[dict[str, range]]  # the slices rung by rung; their union is ``fitness``
    confirm: dict[str, range]

    @classmethod
    def make(
        cls,
        sizes: Mapping[str, int],
        limit: int | float | None,
        rung_fractions: Sequence[float] | None = None,
        confirm: int | None = 0,
    ) -> QuestionPlan:
        """``sizes``: questions per task in the split; ``limit`` as lm-eval reads it (a count,
        or a fraction < 1 of each task); ``confirm``: per task, None for :data:`AUTO_CONFIRM`
        (at most the fitness questions) where the split has room. Raises ``ValueError`` naming
        what does not fit."""
        fitness: dict[str, range] = {}
        confirm_r: dict[str, range] = {}
        for name, size in sizes.items():
            n = limit_count(limit, size)
            fitness[name] = range(0, n)
            room = size - n
            want = min(AUTO_CONFIRM, n, room) if confirm is None else confirm
            if want > room:
                raise ValueError(
                    f"confirm.questions={confirm}: task {name!r} has {size} questions and the "
                    f"fitness uses the first {n}, so at most {room} are left for a confirm "
                    "slice; lower confirm.questions or fitness.limit"
                )
            confirm_r[name] = range(n, n + want)
        fractions = list(rung_fractions or [1.0])
        rungs: list[dict[str, range]] = []
        prev = dict.fromkeys(fitness, 0)
        for frac in fractions:
            step: dict[str, range] = {}
            for name, r in fitness.items():
                stop = len(r) if frac >= 1.0 else max(prev[name], math.ceil(frac * len(r)))
                step[name] = range(prev[name], stop)
                prev[name] = stop
            if any(len(s) for s in step.values()):
                rungs.append(step)
        return cls(fitness=fitness, rungs=rungs, confirm=confirm_r)

    @property
    def n_fitness(self) -> int:
        return sum(len(r) for r in self.fitness.values())

    @property
    def n_confirm(self) -> int:
        return sum(len(r) for r in self.confirm.values())


def limit_count(limit: int | float | None, size: int) -> int:
    """Questions lm-eval's ``limit`` keeps of a task of ``size`` (its own rule: ceil of a
    fraction, the count capped at the size)."""
    if limit is None:
        return size
    if isinstance(limit, float) and limit < 1.0:
        return int(math.ceil(size * limit))
    return min(int(limit), size)


@dataclass
class Tally:
    """Per-task sums of a mean-aggregated metric over the slices scored so far."""

    weights: dict[str, float]
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, means: Mapping[str, float], counts: Mapping[str, int]) -> None:
        for name, n in counts.items():
            if n:
                self.sums[name] = self.sums.get(name, 0.0) + float(means[name]) * n
                self.counts[name] = self.counts.get(name, 0) + n

    @property
    def questions(self) -> int:
        return sum(self.counts.values())

    def per_task(self) -> dict[str, float]:
        return {name: self.sums[name] / n for name, n in self.counts.items() if n}

    def fitness(self) -> float:
        """The weighted mean over tasks of each task's mean so far (tasks not yet scored count
        with the weight of those that were)."""
        means = self.per_task()
        total = sum(self.weights[name] for name in means)
        if not means or total <= 0:
            return math.nan
        return sum(self.weights[name] * m for name, m in means.items()) / total


def wilson_upper(p: float, n: int, z: float) -> float:
    """Upper end of the Wilson score interval of a proportion ``p`` seen on ``n`` questions:
    the best accuracy the candidate plausibly has (one-sided, ``z`` standard deviations)."""
    if n <= 0:
        return 1.0
    p = min(max(p, 0.0), 1.0)
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z2 / n))
