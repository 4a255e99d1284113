"""Write a run's human-facing outputs: the PNGs, ``report.html`` and ``champion/README.md``.

Each file is written whole or not at all (:mod:`mergekit_evo.atomic`): a kill while the report
is written leaves the previous version, never half a page or a truncated PNG.

Called at the end of every search and by ``mergekit-evo report RUN_DIR``; it reads only plain
data (metrics.json, trials.csv rows, the champion recipe, the config as dumped), so the same
files come out of a finished run and of a report rebuilt later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from mergekit_evo.atomic import write_bytes, write_text
from mergekit_evo.report.card import model_card
from mergekit_evo.report.html import html_report
from mergekit_evo.report.plots import (
    dfs_path_plot,
    fitness_plot,
    pareto_plot,
    ps_heatmap,
    report_plot,
)
from mergekit_evo.report.trials_csv import FIXED_COLUMNS

#: plot key -> (file name under RUN_DIR/plots, caption)
PLOTS = {
    "fitness": ("fitness.png", "Fitness per trial, best so far and the sources' baselines"),
    "ps": ("ps_parameters.png", "PS champion: parameters per model and layer group"),
    "dfs": (
        "dfs_path.png",
        "DFS: the champion's layer path (or the DFS stage's best), coloured by source model",
    ),
    "pareto": ("pareto.png", "Pareto front of the objectives"),
    "report": ("report_split.png", "Report split: sources vs champion"),
}


def _coefficients(row: dict[str, Any]) -> dict[str, float]:
    return {
        k: v
        for k, v in row.items()
        if k not in FIXED_COLUMNS and not k.startswith("objective_") and v != ""
    }


def _best_row(rows: list[dict[str, Any]], stage: str) -> dict[str, Any] | None:
    """The stage's best complete row (a method choice's ``ps:<method>`` rows are all ``ps``)."""
    done = [
        r
        for r in rows
        if str(r.get("stage")).split(":")[0] == stage
        and r.get("state") == "COMPLETE"
        and r.get("fitness") != ""
    ]
    return max(done, key=lambda r: (float(r["fitness"]), -int(r["number"])), default=None)


def _recipe_of(root: Path, row: dict[str, Any]) -> dict[str, Any] | None:
    """A trial's recipe, read back from its ``trials/*.yml``."""
    import yaml

    try:
        doc = yaml.safe_load((root / str(row.get("yaml"))).read_text())
    except (OSError, yaml.YAMLError):
        return None
    return doc if isinstance(doc, dict) else None


def dfs_path(recipe: dict[str, Any]) -> tuple[list[tuple[int, int]], list[float], list[str]] | None:
    """(layers as (model, layer), hop scales, model labels) of a dfs / ps_dfs recipe."""
    from mergekit_evo.config import num_layers
    from mergekit_evo.methods.dfs import DFS_PARAMETER_NAMES, DFSParameters, plan_path

    method = recipe.get("merge_method")
    params = dict(recipe.get("parameters") or {})
    if method == "dfs":
        paths = [m["model"] for m in recipe.get("models") or []]
        counts = [num_layers(p) for p in paths]
    elif method == "ps_dfs":
        paths = list(params.get("dfs_models") or [])
        stages = set(recipe.get("modules") or {}) | {"ps"}
        if recipe.get("modules"):
            first = next(iter(recipe["modules"].values()))
            ref = recipe.get("base_model") or first["models"][0]["model"]
        else:
            ref = recipe.get("base_model") or recipe["models"][0]["model"]
        counts = [num_layers(ref) if p in stages else num_layers(p) for p in paths]
    else:
        return None
    dfs = {k: params[k] for k in DFS_PARAMETER_NAMES if k in params}
    plan = plan_path(counts, DFSParameters(**dfs))
    labels = [os.path.basename(str(p).rstrip("/")) or str(p) for p in paths]
    return [(r.model, r.layer) for r in plan.layers], list(plan.hop_scales), labels


def write_run_report(
    root: str | os.PathLike[str],
    metrics: dict[str, Any],
    rows: list[dict[str, Any]],
    cfg: dict[str, Any],
    recipe: dict[str, Any] | None,
    log: Any = None,
) -> dict[str, Path]:
    """Write RUN_DIR/plots/*.png, RUN_DIR/report.html and (if RUN_DIR/champion exists) its
    README.md; returns what was written.  ``recipe``: the champion's (for the DFS path)."""
    root = Path(root)
    images: dict[str, tuple[str, bytes | None]] = {}
    from_recipe = bool((cfg.get("ps") or {}).get("recipe"))
    images["fitness"] = (
        PLOTS["fitness"][1],
        fitness_plot(
            rows,
            metrics.get("baseline_fitness") or {},
            "the recipe" if from_recipe else "start point",
        ),
    )
    ps_row = _best_row(rows, "ps")
    images["ps"] = (
        PLOTS["ps"][1],
        ps_heatmap(
            _coefficients(ps_row),
            f"Best PS recipe (ps trial {ps_row['number']}, fitness {float(ps_row['fitness']):.4f})",
        )
        if ps_row
        else None,
    )
    path = None
    dfs_row = _best_row(rows, "dfs")
    shown = recipe
    if recipe is not None and recipe.get("merge_method") not in ("dfs", "ps_dfs") and dfs_row:
        # a PS champion picked over the DFS stage (confirm set): show the DFS stage's best path
        shown = _recipe_of(root, dfs_row)
    if shown is not None:
        try:
            path = dfs_path(shown)
        except (OSError, KeyError, ValueError, TypeError) as e:  # a model folder moved since
            if log is not None:
                log(f"report: no DFS path plot ({type(e).__name__}: {e})")
    images["dfs"] = (PLOTS["dfs"][1], dfs_path_plot(*path) if path else None)
    tasks = [t["name"] if isinstance(t, dict) else str(t) for t in cfg["fitness"]["tasks"]]
    images["pareto"] = (PLOTS["pareto"][1], pareto_plot(rows, tasks))
    images["report"] = (PLOTS["report"][1], report_plot(metrics.get("report")))
    written: dict[str, Path] = {}
    (root / "plots").mkdir(exist_ok=True)
    for key, (_, png) in images.items():
        target = root / "plots" / PLOTS[key][0]
        if png:
            write_bytes(target, png)
            written[key] = target
        elif target.exists():
            target.unlink()  # a stale picture of an earlier report
    best_yaml = (root / "best.yml").read_text() if (root / "best.yml").exists() else None
    done = [r for r in rows if r.get("state") == "COMPLETE" and r.get("fitness") != ""]
    done.sort(key=lambda r: -float(r["fitness"]))
    shown = {k: v for k, v in images.items() if v[1] is not None or k in ("fitness", "report")}
    page = html_report(metrics, shown, best_yaml, done[:10])
    write_text(root / "report.html", page)
    written["html"] = root / "report.html"
    if (root / "champion").is_dir() and best_yaml is not None:
        card = model_card(cfg, metrics, best_yaml, int(cfg.get("merge_seed", 0)))
        write_text(root / "champion" / "README.md", card)
        written["card"] = root / "champion" / "README.md"
    return written


def load_config(root: str | os.PathLike[str]) -> dict[str, Any]:
    """RUN_DIR/config.yml as a mapping (the search config the run was started with)."""
    return yaml.safe_load((Path(root) / "config.yml").read_text()) or {}
