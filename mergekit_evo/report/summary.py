"""The table a search prints when it ends: sources vs stage bests vs champion, both splits."""

from __future__ import annotations

from typing import Any


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _gain(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def summary_table(metrics: dict[str, Any]) -> str:
    """Plain-text table from ``metrics.json``: fitness on the search split, report split score."""
    report = metrics.get("report") or {}
    report_sources = report.get("sources") or {}
    rows: list[tuple[str, float | None, float | None]] = []
    for name, value in (metrics.get("baseline_fitness") or {}).items():
        if name != "best":
            rows.append((name, value, (report_sources.get(name) or {}).get("score")))
    if metrics.get("start_fitness") is not None:  # trial 0: a --from-recipe's recipe
        rows.append(("start (trial 0)", metrics["start_fitness"], None))
    for label, key in (("PS best", "ps_best_fitness"), ("DFS best", "dfs_best_fitness")):
        if metrics.get(key) is not None:
            rows.append((label, metrics[key], None))
    champion_report = (report.get("champion") or {}).get("score")
    stage = metrics.get("champion_stage")
    where = f"{stage} trial" if stage and ":" in str(stage) else "trial"
    rows.append(
        (
            f"champion ({where} {metrics.get('champion_trial')})",
            metrics.get("champion_fitness"),
            champion_report,
        )
    )
    gain_label = "gain over best source"
    confirm = ((metrics.get("champion_confirm") or {}).get("champion")) or None
    width = max(len(gain_label), *(len(r[0]) for r in rows), 23 if confirm else 0)
    lines = [f"{'model':<{width}}  {'search':>8}  {'report':>8}"]
    lines += [f"{name:<{width}}  {_cell(s):>8}  {_cell(r):>8}" for name, s, r in rows]
    if confirm is not None:  # the winner's curse: picked on questions it was not searched on
        lines.append(
            f"{'champion, confirm slice':<{width}}  {_cell(confirm.get('score')):>8}  "
            f"{'-':>8}  ({confirm.get('questions')} questions; picked on both: "
            f"{_cell(confirm.get('pooled'))})"
        )
    lines.append(
        f"{gain_label:<{width}}  {_gain(metrics.get('fitness_improvement')):>8}  "
        f"{_gain(report.get('improvement')) if report else '-':>8}"
    )
    if metrics.get("start_fitness") is not None:
        lines.append(
            f"{'gain over the start':<{width}}  {_gain(metrics.get('gain_over_start')):>8}"
        )
    return "\n".join(lines)
