"""``mergekit-evo report RUN_DIR``: rebuild the run's reports and show metrics.json in words."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--storage", default=None, help="Storage URL if not the one in RUN_DIR/run.json.")
def report_command(run_dir: str, storage: str | None) -> None:
    """Summarise a run; rewrite trials.csv, report.md, report.html, plots/, champion/README.md."""
    from mergekit_evo.cli import note_run_dir

    note_run_dir(run_dir)
    import optuna
    import yaml

    from mergekit_evo.atomic import write_text
    from mergekit_evo.report.markdown import markdown_report
    from mergekit_evo.report.metrics import improvement, start_fitness
    from mergekit_evo.report.trials_csv import trial_rows, trials_csv
    from mergekit_evo.report.write import load_config, write_run_report
    from mergekit_evo.search.fleet.storage import open_storage

    root = Path(run_dir)
    info_path = root / "run.json"
    if not info_path.exists():
        raise click.ClickException(f"{root} is not a mergekit-evo run directory (no run.json)")
    info = json.loads(info_path.read_text())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = open_storage(storage or info["storage"])
    names = {s.study_name for s in optuna.get_all_study_summaries(store)}
    studies = [
        (stage, optuna.load_study(study_name=name, storage=store))
        for stage, name in info["studies"].items()
        if name in names
    ]
    write_text(root / "trials.csv", trials_csv(studies))
    click.echo(f"trials.csv: {sum(len(s.trials) for _, s in studies)} trials")
    mpath = root / "metrics.json"
    if not mpath.exists():
        click.echo("metrics.json: not written yet (search still running or stopped early)")
        return
    m = json.loads(mpath.read_text())
    rows = trial_rows(studies)
    write_text(root / "report.md", markdown_report(m, rows))
    if "start_fitness" not in m:  # a run from before the start point was recorded
        m["start_fitness"] = start_fitness(rows)
        m["gain_over_start"] = improvement(m.get("champion_fitness"), m["start_fitness"])
    best = root / "best.yml"
    recipe = yaml.safe_load(best.read_text()) if best.exists() else None
    written = write_run_report(root, m, rows, load_config(root), recipe, log=click.echo)
    click.echo("wrote " + ", ".join(str(p.relative_to(root)) for p in written.values()))
    for name, v in (m.get("baseline_fitness") or {}).items():
        click.echo(f"baseline {name:>12}: {v}")
    click.echo(f"PS best: {m.get('ps_best_fitness')}   DFS best: {m.get('dfs_best_fitness')}")
    click.echo(f"champion: {m.get('champion_fitness')} (trial {m.get('champion_trial')})")
    click.echo(f"improvement over best source: {m.get('fitness_improvement')}")
    if m.get("report"):
        click.echo("report split: " + json.dumps(m["report"]))
