"""``mergekit-evo status RUN_DIR`` (progress, workers, best) and ``mergekit-evo best RUN_DIR``.

Everything is read from the run's storage, so it works while the search runs, on any host that
can reach the storage, and covers every worker process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click


def _workers(study: Any) -> list[dict[str, Any]]:
    """Each process of the study: host, GPU, state, seconds since it was last heard, trials."""
    from optuna.trial import TrialState

    from mergekit_evo.search.fleet.storage import grace_period_s, heartbeat_interval_s
    from mergekit_evo.search.fleet.workers import TRIAL_ATTR, registry

    done: dict[str, int] = {}
    failed: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        key = t.user_attrs.get(TRIAL_ATTR)
        if key is None:
            continue
        tally = done if t.state == TrialState.COMPLETE else failed
        tally[key] = tally.get(key, 0) + 1
    now = time.time()
    out = []
    for key, w in sorted(registry(study).items()):
        age = now - float(w.get("last_seen", now))
        state = str(w.get("state", ""))
        grace_s = grace_period_s(float(w.get("heartbeat_s") or heartbeat_interval_s()))
        silent = not state.startswith("stopped") and age > grace_s
        out.append(
            {
                "host": w.get("host"),
                "pid": w.get("pid"),
                "gpu": w.get("gpu"),
                "role": w.get("role"),
                "state": state,
                "trial": w.get("trial"),
                "last_heartbeat_s": round(age, 1),
                "silent": silent,
                "trials_done": done.get(key, 0),
                "trials_failed": failed.get(key, 0),
            }
        )
    return out


def run_status(run_dir: str | Path, storage: str | None = None) -> dict[str, Any]:
    """Per stage: trial counts by state, budget progress, best, and the worker processes."""
    import optuna

    from mergekit_evo.search.fleet.budget import WALL_ATTR, counted
    from mergekit_evo.search.fleet.storage import open_storage
    from mergekit_evo.search.stage.loop import best_trial

    root = Path(run_dir)
    info_path = root / "run.json"
    if not info_path.exists():
        raise click.ClickException(f"{root} is not a mergekit-evo run directory (no run.json)")
    info = json.loads(info_path.read_text())
    store = open_storage(storage or info["storage"])
    out: dict[str, Any] = {"run_dir": str(root.absolute()), "mode": info["mode"], "stages": {}}
    names = {s.study_name for s in optuna.get_all_study_summaries(store)}
    for stage, name in info["studies"].items():
        if name not in names:
            continue
        study = optuna.load_study(study_name=name, storage=store)
        trials = study.get_trials(deepcopy=False)
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        b = best_trial(study)
        n_done, _ = counted(trials)
        out["stages"][stage] = {
            "trials": counts,
            "done": n_done,
            "max_trials": (info.get("max_trials") or {}).get(stage),
            "wall_s": round(float(study.user_attrs.get(WALL_ATTR, 0.0)), 1),
            "best_fitness": b.user_attrs.get("fitness") if b else None,
            "best_trial": b.number if b else None,
            "workers": _workers(study),
        }
    metrics = root / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        out["baseline_fitness"] = m.get("baseline_fitness")
        out["fitness_improvement"] = m.get("fitness_improvement")
    return out


def _worker_line(w: dict[str, Any]) -> str:
    where = f"{w['host']} pid {w['pid']} gpu {w['gpu']}"
    heard = f"last heartbeat {w['last_heartbeat_s']:.0f} s ago"
    if w["silent"]:
        heard += " (silent: dead? its trial is re-asked)"
    state = w["state"] if w["state"] != "trial" else f"trial {w['trial']}"
    done = f"{w['trials_done']} done"
    if w["trials_failed"]:
        done += f", {w['trials_failed']} failed"
    return f"    {where} [{w['role']}]: {state}; {done}; {heard}"


@click.command("status")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--storage", default=None, help="Storage URL if not the one in RUN_DIR/run.json.")
def status_command(run_dir: str, as_json: bool, storage: str | None) -> None:
    """Show each stage's progress, best trial and worker processes."""
    st = run_status(run_dir, storage)
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    click.echo(f"{st['run_dir']}  ({st['mode']})")
    for stage, s in st["stages"].items():
        counts = ", ".join(f"{k} {v}" for k, v in sorted(s["trials"].items()))
        best = "-" if s["best_fitness"] is None else f"{s['best_fitness']:.4f}"
        budget = f"{s['done']}/{s['max_trials']}" if s["max_trials"] else f"{s['done']}"
        click.echo(
            f"  {stage}: {counts}; best {best} (trial {s['best_trial']}); "
            f"budget {budget} trials, {s['wall_s']:.0f} s"
        )
        for w in s["workers"]:
            click.echo(_worker_line(w))


@click.command("best")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def best_command(run_dir: str) -> None:
    """Print RUN_DIR/best.yml (the champion recipe, for mergekit-yaml)."""
    p = Path(run_dir) / "best.yml"
    if not p.exists():
        raise click.ClickException(f"no best.yml in {run_dir} yet (no trial has completed)")
    click.echo(p.read_text(), nl=False)
