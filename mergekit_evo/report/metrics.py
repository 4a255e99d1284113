"""``metrics.json``: source baselines, stage bests, champion and its gain over the best source.

``fitness_improvement`` = (champion - best source) / |best source|, the number the paper's
tables compare (for accuracies, > 0, this is the plain ratio; the absolute value keeps the sign
meaningful for log-likelihood fitness, which is negative); ``null`` when the best source is 0.
``fitness_gain`` = champion - best source, the same comparison in the fitness's own units
(accuracy points; what ``budget.target_fitness_gain`` stops on); ``null`` without a source
score. ``gain_over_start`` is the relative one against trial 0, the start point (with
``--from-recipe``, the recipe itself): how much the search improved on it.
"""

from __future__ import annotations

from typing import Any


def improvement(champion: float | None, best_source: float | None) -> float | None:
    """Relative gain of the champion over the best source model."""
    if champion is None or best_source is None or best_source == 0:
        return None
    return (champion - best_source) / abs(best_source)


def build_metrics(
    *,
    mode: str,
    baseline: dict[str, float],
    ps_best: float | None,
    dfs_best: float | None,
    champion: float | None,
    champion_trial: int | None,
    n_trials: dict[str, dict[str, int]],
    stop_reasons: dict[str, str],
    report: dict[str, Any] | None = None,
    start: float | None = None,
) -> dict[str, Any]:
    """The metrics.json document; ``start``: trial 0's fitness (the recipe, --from-recipe)."""
    best_source = max(baseline.values()) if baseline else None
    return {
        "mode": mode,
        "baseline_fitness": {**baseline, "best": best_source},
        "ps_best_fitness": ps_best,
        "dfs_best_fitness": dfs_best,
        "champion_fitness": champion,
        "champion_trial": champion_trial,
        "fitness_improvement": improvement(champion, best_source),
        "fitness_gain": None if champion is None or best_source is None else champion - best_source,
        "trials": n_trials,
        "stop_reason": stop_reasons,
        "report": report,
        "start_fitness": start,
        "gain_over_start": improvement(champion, start),
    }


def start_fitness(rows: list[dict[str, Any]]) -> float | None:
    """Fitness of the first stage's trial 0: the start point (a --from-recipe's recipe)."""
    if not rows:
        return None
    first = rows[0]["stage"]
    for r in rows:
        if r["stage"] == first and r["number"] == 0 and r["state"] == "COMPLETE":
            return None if r["fitness"] == "" else float(r["fitness"])
    return None
