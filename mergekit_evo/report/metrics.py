"""``metrics.json``: source baselines, stage bests, champion and its gain over the best source.

``fitness_improvement`` = (champion - best source) / |best source|, the number the paper's
tables compare (for accuracies, > 0, this is the plain ratio; the absolute value keeps the sign
meaningful for log-likelihood fitness, which is negative); ``null`` when the best source is 0.
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
) -> dict[str, Any]:
    """The metrics.json document."""
    best_source = max(baseline.values()) if baseline else None
    return {
        "mode": mode,
        "baseline_fitness": {**baseline, "best": best_source},
        "ps_best_fitness": ps_best,
        "dfs_best_fitness": dfs_best,
        "champion_fitness": champion,
        "champion_trial": champion_trial,
        "fitness_improvement": improvement(champion, best_source),
        "trials": n_trials,
        "stop_reason": stop_reasons,
        "report": report,
    }
