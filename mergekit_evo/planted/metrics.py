"""How close a search came to the planted optimum: fitness gap, parameter error, slot agreement.

``evals_to_goal`` is the first evaluation after which the best-so-far candidate (by fitness,
which is all an optimiser sees) meets the issue's goal: every planted weight within ``WEIGHT_TOL``
and the fitness within ``GAP_TOL_PCT`` % of the planted fitness (PS); DFS slot agreement at
least ``SLOT_TOL`` (DFS); weights and slots (PS+DFS).  The same rule applies to every optimiser.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mergekit_evo.planted import recipes
from mergekit_evo.planted.problem import PlantedProblem
from mergekit_evo.planted.search import Trial

WEIGHT_TOL = 0.05
GAP_TOL_PCT = 1.0
SLOT_TOL = 0.9


@dataclass
class Recovery:
    """One candidate compared with the planted recipe."""

    fitness: float
    gap_pct: float  # (planted - fitness) / |planted| * 100; < 0: above the planted fitness
    weights: list[float] | None = None
    weight_max_abs_error: float | None = None
    slot_agreement: float | None = None
    raw_slot_agreement: float | None = None
    path_equal: bool | None = None
    path: list[str] | None = None
    scale_max_abs_error: float | None = None
    scales: list[list[float]] | None = None

    def meets_goal(self, kind: str) -> bool:
        """The issue's goals: PS weights + fitness gap; DFS slot agreement; PS+DFS both
        structural ones (weights and slots; its fitness gap is reported, not required).
        ``kind`` is the problem's mode (a ``dfs_r<seed>`` problem is judged as ``dfs``)."""
        ok = True
        if kind == "ps":
            ok = self.gap_pct <= GAP_TOL_PCT
        if kind in ("ps", "ps_dfs"):
            ok = ok and (self.weight_max_abs_error or 0.0) <= WEIGHT_TOL
        if kind in ("dfs", "ps_dfs"):
            ok = ok and (self.slot_agreement or 0.0) >= SLOT_TOL
        return ok


def gap_pct(fitness: float, planted: float) -> float:
    return (planted - fitness) / abs(planted) * 100.0


def recover(problem: PlantedProblem, recipe: dict[str, Any], fitness: float) -> Recovery:
    """Compare ``recipe`` (a PS, dfs or ps_dfs recipe) with the planted one."""
    rec = Recovery(fitness=fitness, gap_pct=gap_pct(fitness, problem.planted_fitness))
    if problem.mode in ("ps", "ps_dfs"):
        w = recipes.ps_weights(recipe)
        rec.weights = w
        rec.weight_max_abs_error = max(
            abs(a - b) for a, b in zip(w, recipes.PS_WEIGHTS, strict=True)
        )
    plan = problem.plan
    if plan is not None and recipe.get("merge_method") in ("dfs", "ps_dfs"):
        d = recipes.compare_dfs(recipe, plan)
        rec.slot_agreement = d.slot_agreement
        rec.raw_slot_agreement = d.raw_slot_agreement
        rec.path_equal = d.path_equal
        rec.path = d.recovered_path
        rec.scale_max_abs_error = d.scale_max_abs_error
        rec.scales = d.recovered_scales
    return rec


@dataclass
class RunSummary:
    """One optimiser run on one planted problem."""

    kind: str
    optimizer: str
    seed: int
    evaluations: int
    seconds: float
    planted_fitness: float
    champion: Recovery
    evals_to_goal: int | None  # None: the goal was never met within the budget
    best_trace: list[tuple[int, float]]  # (evaluation, best-so-far fitness) at each improvement

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    problem: PlantedProblem, trials: list[Trial], optimizer: str, seed: int, seconds: float
) -> RunSummary:
    """Champion, goal and evaluations-to-goal of a run (trials in evaluation order).

    For PS+DFS only full ``ps_dfs`` candidates (the DFS stage) count as champions, as in the
    search's own ``best.yml``; evaluations are still counted from the first PS trial.
    """
    best: tuple[float, Trial] | None = None
    first_goal: int | None = None
    trace: list[tuple[int, float]] = []
    for t in trials:
        if t.fitness is None or t.recipe is None or not _complete(problem, t):
            continue
        if best is None or t.fitness > best[0]:
            best = (t.fitness, t)
            trace.append((t.number, t.fitness))
            if first_goal is None:
                if recover(problem, t.recipe, t.fitness).meets_goal(problem.mode):
                    first_goal = t.number
    if best is None:
        raise RuntimeError(f"{optimizer} seed {seed}: no completed evaluation")
    champion = recover(problem, best[1].recipe or {}, best[0])
    return RunSummary(
        kind=problem.kind,
        optimizer=optimizer,
        seed=seed,
        evaluations=len(trials),
        seconds=round(seconds, 1),
        planted_fitness=problem.planted_fitness,
        champion=champion,
        evals_to_goal=first_goal,
        best_trace=trace,
    )


def _complete(problem: PlantedProblem, t: Trial) -> bool:
    """A PS+DFS candidate is complete only in the DFS stage (a ``ps_dfs`` recipe)."""
    return problem.mode != "ps_dfs" or (t.recipe or {}).get("merge_method") == "ps_dfs"
