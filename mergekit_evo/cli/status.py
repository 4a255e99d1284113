"""``mergekit-evo status RUN_DIR`` (trial counts, best) and ``mergekit-evo best RUN_DIR``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def run_status(run_dir: str | Path, storage: str | None = None) -> dict[str, Any]:
    """Trial counts by state, best fitness and best trial number, per stage."""
    import optuna

    from mergekit_evo.search.loop import best_trial
    from mergekit_evo.search.study import storage_url

    root = Path(run_dir)
    info_path = root / "run.json"
    if not info_path.exists():
        raise click.ClickException(f"{root} is not a mergekit-evo run directory (no run.json)")
    info = json.loads(info_path.read_text())
    url = storage or info["storage"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = optuna.storages.RDBStorage(storage_url(url), skip_compatibility_check=True)
    out: dict[str, Any] = {"run_dir": str(root.absolute()), "mode": info["mode"], "stages": {}}
    names = {s.study_name for s in optuna.get_all_study_summaries(store)}
    for stage, name in info["studies"].items():
        if name not in names:
            continue
        study = optuna.load_study(study_name=name, storage=store)
        counts: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        b = best_trial(study)
        out["stages"][stage] = {
            "trials": counts,
            "best_fitness": b.user_attrs.get("fitness") if b else None,
            "best_trial": b.number if b else None,
        }
    metrics = root / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        out["baseline_fitness"] = m.get("baseline_fitness")
        out["fitness_improvement"] = m.get("fitness_improvement")
    return out


@click.command("status")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--storage", default=None, help="Storage URL if not the one in RUN_DIR/run.json.")
def status_command(run_dir: str, as_json: bool, storage: str | None) -> None:
    """Show trial counts by state, the best fitness and the best trial."""
    st = run_status(run_dir, storage)
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    click.echo(f"{st['run_dir']}  ({st['mode']})")
    for stage, s in st["stages"].items():
        counts = ", ".join(f"{k} {v}" for k, v in sorted(s["trials"].items()))
        best = "-" if s["best_fitness"] is None else f"{s['best_fitness']:.4f}"
        click.echo(f"  {stage}: {counts}; best {best} (trial {s['best_trial']})")


@click.command("best")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def best_command(run_dir: str) -> None:
    """Print RUN_DIR/best.yml (the champion recipe, for mergekit-yaml)."""
    p = Path(run_dir) / "best.yml"
    if not p.exists():
        raise click.ClickException(f"no best.yml in {run_dir} yet (no trial has completed)")
    click.echo(p.read_text(), nl=False)
