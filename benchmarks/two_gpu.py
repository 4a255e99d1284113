"""Candidates per minute of one search on one GPU and on two: the speed-up of ``--gpus``.

The same short search runs twice from scratch, ``mergekit-evo search CONFIG --gpus 0`` and
``--gpus 0,1`` (one worker process per GPU on one study, see docs/search.md), and this prints
for each the candidates per minute and the ratio.  The rate is the steady one: completed trials
per minute from the moment every worker finished its first trial (so loading the sources,
baselines and the first trial's compilation are not counted) to the last completion; the
end-to-end rate (trials / the command's wall time) is printed too.  Times come from the study
(each trial's start and completion), so they cover every worker.

    python benchmarks/two_gpu.py CONFIG --trials 40 --json docs/benchmarks.json   # 2 GPUs
    python benchmarks/two_gpu.py CONFIG --cpu --trials 6                          # CPU smoke

``CONFIG`` is a search config with ``device: cuda`` (e.g. a PS search as in
docs/gpu-search.md).  ``--json`` merges ``two_gpu_speedup`` (the steady ratio) and ``two_gpu``
(the details) into that file, keeping its other keys.  ``--cpu`` runs ``--workers 1`` and
``--workers 2`` instead (a smoke test of the script; CPU numbers say nothing about GPUs; CI runs
it: ``tests/benchmarks/test_two_gpu.py``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_search(config: str, out: Path, scale: list[str], trials: int) -> float:
    """Run one search from scratch; its wall seconds."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "mergekit_evo", "search", config, "--out", str(out)]
    cmd += [*scale, "--max-trials", str(trials), "-q"]
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    subprocess.run(cmd, check=True)
    return time.monotonic() - t0


def rates(out: Path, wall_s: float) -> dict[str, Any]:
    """Steady and end-to-end candidates per minute of the run in ``out``."""
    import optuna
    from optuna.trial import TrialState

    from mergekit_evo.search.fleet.storage import open_storage

    info = json.loads((out / "run.json").read_text())
    store = open_storage(info["storage"])
    done = []
    for name in info["studies"].values():
        study = optuna.load_study(study_name=name, storage=store)
        done += study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    first: dict[str, Any] = {}  # each worker's first completion: its warm-up ends there
    for t in sorted(done, key=lambda t: t.datetime_complete):
        first.setdefault(t.user_attrs.get("worker", "?"), t.datetime_complete)
    start = max(first.values())
    end = max(t.datetime_complete for t in done)
    steady = [t for t in done if t.datetime_complete > start]
    window_s = (end - start).total_seconds()
    return {
        "workers": len(first),
        "trials": len(done),
        "steady_trials": len(steady),
        "steady_window_s": round(window_s, 2),
        "per_min": round(60 * len(steady) / window_s, 3) if window_s > 0 else None,
        "end_to_end_per_min": round(60 * len(done) / wall_s, 3),
        "wall_s": round(wall_s, 1),
    }


def card() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return out.strip().splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "cpu"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", help="a search config (device: cuda)")
    ap.add_argument("--trials", type=int, default=40, help="max_trials of each search")
    ap.add_argument("--gpus", default="0,1", help="the two GPUs (the first runs alone first)")
    ap.add_argument("--out", default=None, help="folder for the two run dirs (default: temp)")
    ap.add_argument("--json", default=None, help="merge two_gpu_speedup into this JSON file")
    ap.add_argument("--cpu", action="store_true", help="--workers 1 and 2 (a smoke test)")
    args = ap.parse_args()

    base = Path(args.out or tempfile.mkdtemp(prefix="two-gpu-"))
    gpus = [g.strip() for g in args.gpus.split(",")]
    if args.cpu:
        settings = {"1": ["--workers", "1"], "2": ["--workers", "2"]}
    else:
        settings = {gpus[0]: ["--gpus", gpus[0]], ",".join(gpus[:2]): ["--gpus", ",".join(gpus)]}
    res: dict[str, dict[str, Any]] = {}
    for label, scale in settings.items():
        out = base / f"run-{label.replace(',', '-')}"
        res[label] = rates(out, run_search(args.config, out, scale, args.trials))
    one, two = (res[k] for k in settings)
    ratio = two["per_min"] / one["per_min"] if one["per_min"] and two["per_min"] else None
    e2e = two["end_to_end_per_min"] / one["end_to_end_per_min"]

    print(f"\n{'workers':>10} {'trials':>7} {'per min (steady)':>17} {'per min (end to end)':>21}")
    for label, r in res.items():
        print(f"{label:>10} {r['trials']:>7} {r['per_min']!s:>17} {r['end_to_end_per_min']:>21}")
    print(f"speed-up: {ratio:.2f}x steady, {e2e:.2f}x end to end" if ratio else "speed-up: -")

    if args.json:
        path = Path(args.json)
        doc = json.loads(path.read_text()) if path.exists() else {}
        doc["two_gpu_speedup"] = round(ratio, 3) if ratio else None
        doc["two_gpu"] = {
            "date": date.today().isoformat(),
            "card": card() if not args.cpu else "cpu",
            "config": args.config,
            "trials": args.trials,
            "command": " ".join(["python", "benchmarks/two_gpu.py", *sys.argv[1:]]),
            "rate": "completed trials per minute once every worker finished its first trial",
            "end_to_end_speedup": round(e2e, 3),
            "runs": res,
        }
        path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
        print(f"wrote two_gpu_speedup to {path}")


if __name__ == "__main__":
    main()
