"""``report.md``: a human summary of a run (baselines, stage bests, champion, top trials)."""

from __future__ import annotations

from typing import Any


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def markdown_report(metrics: dict[str, Any], rows: list[dict[str, Any]], top: int = 5) -> str:
    """Markdown text from ``metrics.json`` and the trials.csv rows."""
    out = [f"# mergekit-evo run ({metrics.get('mode')})", "", "| model | fitness |", "|---|---|"]
    for name, v in (metrics.get("baseline_fitness") or {}).items():
        out.append(f"| {name} | {_f(v)} |")
    out.append(f"| PS best | {_f(metrics.get('ps_best_fitness'))} |")
    out.append(f"| DFS best | {_f(metrics.get('dfs_best_fitness'))} |")
    out.append(
        f"| **champion** (trial {metrics.get('champion_trial')}) "
        f"| **{_f(metrics.get('champion_fitness'))}** |"
    )
    gain = metrics.get("fitness_improvement")
    out += ["", f"Improvement over the best source: {'-' if gain is None else f'{gain:+.2%}'}"]
    for stage, why in (metrics.get("stop_reason") or {}).items():
        out.append(f"- {stage} stopped: {why}")
    rep = metrics.get("report")
    if rep:
        out += ["", "## Report split", "", "| model | score |", "|---|---|"]
        for name, v in rep.get("sources", {}).items():
            out.append(f"| {name} | {_f(v.get('score'))} |")
        out.append(f"| champion | {_f(rep.get('champion', {}).get('score'))} |")
    done = [r for r in rows if r.get("state") == "COMPLETE" and r.get("fitness") != ""]
    done.sort(key=lambda r: -float(r["fitness"]))
    if done:
        out += ["", f"## Top {min(top, len(done))} trials", "", "| stage | trial | fitness |"]
        out.append("|---|---|---|")
        for r in done[:top]:
            out.append(f"| {r['stage']} | {r['number']} | {_f(float(r['fitness']))} |")
    return "\n".join(out) + "\n"
