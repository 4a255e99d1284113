"""The merge method as a choice: successive halving over one CMA-ES study per method.

``ps.method: [dare_ties, ties, task_arithmetic]`` gives each method a study of its own (its own
start points, its own CMA-ES) and splits the PS stage's trials into rounds: in each round every
method still in the race runs its study up to the round's budget, then the better half (by the
best complete fitness so far; ties: the order in the config) goes on. Each round gets an equal
share of the stage's trials, split between the methods in it, so the winner gets the most
(3 methods, 120 trials: 13 each, then 20 each for two, then 41 for one: 74 for the winner).

The schedule is a function of the config and the race is decided from the studies alone, so a
resumed run and every worker process follow the same rounds without being told. Survivors
stay survivors on a replay: a method only gains fitness by running, and one that was cut does
not run again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Round:
    """One round: the methods in it and each one's study budget at its end (cumulative)."""

    index: int
    methods: tuple[str, ...]
    max_trials: dict[str, int]


def field_sizes(n: int, budget: int | None = None) -> list[int]:
    """Methods in each round: ``n``, halved (rounded up) down to 1; a budget too small to give
    every round's methods a trial each is one round (every method at once, then the best)."""
    sizes = [n]
    while sizes[-1] > 1:
        sizes.append(math.ceil(sizes[-1] / 2))
    if budget is not None and budget < sum(sizes):
        return [n]
    return sizes


def per_method(n: int, budget: int) -> list[int]:
    """Trials each method of round r gets in that round (the remainder to the last round)."""
    sizes = field_sizes(n, budget)
    share = budget // len(sizes)
    out = [max(1, share // k) for k in sizes]
    out[-1] += max(0, budget - sum(p * k for p, k in zip(out, sizes, strict=True)))
    return out


def next_round(
    methods: list[str], budget: int, done: list[Round], best: dict[str, float | None]
) -> Round | None:
    """The round after ``done`` (None: the race is over); survivors ranked by ``best``.  In a
    one-round race too small for a trial per method, the first methods get one each."""
    sizes = field_sizes(len(methods), budget)
    r = len(done)
    if r == len(sizes):
        return None
    alive = list(done[-1].methods) if done else list(methods)
    if len(alive) > sizes[r]:
        alive = [m for m in methods if m in ranked(alive, methods, best)[: sizes[r]]]
    if len(sizes) == 1:  # one round: the budget split as evenly as it goes, config order first
        n, extra = divmod(budget, len(methods))
        share = {m: n + (i < extra) for i, m in enumerate(methods)}
        kept = {m: k for m, k in share.items() if k}
        return Round(r, tuple(kept), kept)
    before = done[-1].max_trials if done else {}
    add = per_method(len(methods), budget)[r]
    return Round(r, tuple(alive), {m: before.get(m, 0) + add for m in alive})


def ranked(alive: list[str], methods: list[str], best: dict[str, float | None]) -> list[str]:
    """Best first (ties: the order in the config)."""
    return sorted(alive, key=lambda m: (-_value(best.get(m)), methods.index(m)))


def _value(v: float | None) -> float:
    return -math.inf if v is None or math.isnan(v) else v
