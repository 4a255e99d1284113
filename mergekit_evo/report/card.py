"""``champion/README.md``: a Hugging Face model card for the champion.

Front matter as the Hub reads it (``base_model``, ``tags``, ``library_name``), then what a
reader of a merged model wants: the sources, the method and the full recipe, how it was
searched (settings, budget, fitness), its scores beside the sources' on both splits, and the
command that rebuilds it.  Paths are the portable ones of ``best.yml``.
"""

from __future__ import annotations

from typing import Any

import yaml

from mergekit_evo.recipe_paths import portable

TAGS = ["merge", "mergekit", "mergekit-evo"]
#: the card's last line (a reader checking the file is whole looks for it)
CARD_LAST_LINE = (
    "Local model paths in the recipe are relative to the folder the search was run from."
)


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, (int, float)) else str(v)


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:+.1%}"


def _start_note(cfg: dict[str, Any], metrics: dict[str, Any]) -> str | None:
    """A sentence on where the search started, when it started from a given recipe."""
    if (cfg.get("ps") or {}).get("recipe"):
        what = "a given MergeKit recipe (`ps.recipe` in the run's config.yml: `--from-recipe`)"
    elif (cfg.get("dfs") or {}).get("start_path") and cfg.get("mode") == "dfs":
        what = (
            "a given layer path (`dfs.start_path`: a passthrough frankenmerge's, `--from-recipe`)"
        )
    else:
        return None
    return (
        f"The search started from {what}: trial 0 is that recipe, fitness "
        f"{_f(metrics.get('start_fitness'))}; this model improves on it by "
        f"{_pct(metrics.get('gain_over_start'))} on the search split."
    )


def model_card(
    cfg: dict[str, Any], metrics: dict[str, Any], best_yaml: str, merge_seed: int = 0
) -> str:
    """The card's markdown from the run's config (as dumped), metrics.json and best.yml."""
    models = {name: portable(str(p)) for name, p in (cfg.get("models") or {}).items()}
    base = cfg.get("base_model")
    base_model: Any = portable(str(base)) if base else list(models.values())
    recipe = yaml.safe_load(best_yaml) or {}
    method = recipe.get("merge_method", "?")
    if method == "ps_dfs":
        method = f"ps_dfs (PS: {recipe.get('parameters', {}).get('ps_method')}, then DFS)"
    front = yaml.safe_dump(
        {"base_model": base_model, "tags": TAGS, "library_name": "transformers"},
        sort_keys=False,
    )
    fit = cfg.get("fitness") or {}
    tasks = ", ".join(t["name"] if isinstance(t, dict) else str(t) for t in fit.get("tasks", []))
    opt = cfg.get("optimizer") or {}
    budget = cfg.get("budget") or {}
    trials = metrics.get("trials") or {}
    done = ", ".join(
        f"{stage}: {n.get('complete', 0)} complete, {n.get('fail', 0)} failed"
        for stage, n in trials.items()
    )
    stops = "; ".join(f"{s}: {why}" for s, why in (metrics.get("stop_reason") or {}).items())
    out = [
        "---",
        front.rstrip(),
        "---",
        "",
        "# mergekit-evo champion",
        "",
        "This model is a merge of pre-trained language models found by an evolutionary search "
        "over [MergeKit](https://github.com/arcee-ai/mergekit) recipes with mergekit-evo "
        f"(mode `{cfg.get('mode')}`, Optuna {opt.get('sampler', 'cmaes')}).",
        "",
        "## Source models",
        "",
    ]
    start = _start_note(cfg, metrics)
    if start:
        out[-2:-2] = [start, ""]
    out += [f"- `{name}`: {path}" for name, path in models.items()]
    if base:
        out.append(f"- base model: {portable(str(base))}")
    out += [
        "",
        f"## Method\n\n`{method}`; the full recipe (`best.yml`):",
        "",
        "```yaml",
        best_yaml.rstrip(),
        "```",
        "",
        "## Search",
        "",
        f"- fitness: {tasks} (limit {fit.get('limit')}, search split)",
        f"- optimizer: {opt.get('sampler', 'cmaes')}, seed {opt.get('seed', 0)}",
        f"- budget: max_trials {budget.get('max_trials')}; trials run: {done or '-'}",
        f"- stopped: {stops or '-'}",
        "",
        "## Scores",
        "",
        "| model | search split (fitness) | report split |",
        "|---|---|---|",
    ]
    base_fit = metrics.get("baseline_fitness") or {}
    rep = metrics.get("report") or {}
    for name in models:
        r = (rep.get("sources") or {}).get(name, {}).get("score")
        out.append(f"| {name} | {_f(base_fit.get(name))} | {_f(r)} |")
    if metrics.get("start_fitness") is not None:
        out.append(f"| start point (trial 0) | {_f(metrics['start_fitness'])} | - |")
    champ_r = (rep.get("champion") or {}).get("score")
    out.append(
        f"| **this model** | **{_f(metrics.get('champion_fitness'))}** | **{_f(champ_r)}** |"
    )
    out += [
        "",
        f"Gain over the best source: {_pct(metrics.get('fitness_improvement'))} (search split), "
        f"{_pct(rep.get('improvement'))} (report split); over the start point: "
        f"{_pct(metrics.get('gain_over_start'))}.",
        "",
        "## Rebuild",
        "",
        "```sh",
        "pip install mergekit-evo   # registers the dfs / ps_dfs methods with MergeKit",
        f"mergekit-yaml best.yml ./merged --random-seed {merge_seed}",
        "```",
        "",
        CARD_LAST_LINE,
        "",
    ]
    return "\n".join(out)
