"""Crash-safety soak: SIGKILL ``mergekit-evo search`` on the zoo at random moments, resume each
time, and check that nothing a user relies on was lost, repeated or left half-written.

    python benchmarks/soak_resume.py [--kills 20] [--trials 120] [--seed 0] [--out DIR]
        [--json docs/reliability.json]

Each round starts the README's command (``search CONFIG --out RUN --save-champion``, a PS search
on the committed zoo, fitness on ``--limit`` questions) and SIGKILLs its whole process group
after a random delay (uniform in [``--min-delay``, ``--max-delay``] s: start-up, baselines,
mid-trial, mid-write all get hit).  After every kill:

- every output present is whole: ``best.yml`` and ``champion.json`` parse, ``metrics.json`` and
  ``trials.csv`` parse, ``report.md`` is not empty, ``report.html`` ends its page, every
  ``plots/*.png`` ends with its IEND chunk, ``champion/README.md`` ends with the card's last
  line, ``champion/`` has a readable ``config.json`` and complete safetensors (header sizes
  against file size);
- no completed trial was lost: every trial COMPLETE before is still COMPLETE with the same
  parameters and fitness, and every trial the process printed as scored is COMPLETE.

Then one last run finishes the budget, and: no parameter set was evaluated twice (COMPLETE
trials' parameters are distinct); ``best.yml``, ``metrics.json`` and ``champion.json`` name the
best completed trial (highest fitness, earliest on ties); ``trials.csv`` has every trial.
Exit code 0 iff every check held; the figures go to ``--json`` (see docs/reliability.md).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
ZOO = REPO / "fixtures" / "zoo"
SCORED = re.compile(r"^trial\s+(\d+)\s+fitness ")
#: a PNG's last chunk: IEND, no data, its CRC
PNG_END = b"IEND\xaeB`\x82"


def soak_config(zoo: Path, trials: int, limit: int) -> dict[str, Any]:
    """A PS search on the zoo (recipes/zoo-ps.yml's space), small enough for many rounds."""
    return {
        "mode": "ps",
        "models": {"math": str(zoo / "math"), "verbs": str(zoo / "verbs")},
        "base_model": str(zoo / "base"),
        "ps": {
            "method": "dare_ties",
            "parameters": ["weight", "density"],
            "bounds": {"weight": [0, 2], "density": [0.2, 1]},
            "x0": {"weight": 1.0, "density": 0.8},
            "fixed": {"normalize": False},
        },
        "fitness": {
            "tasks": [{"name": "zoo_target_search", "metric": "exact_match,flexible-extract"}],
            "include_path": [str(zoo / "tasks")],
            "limit": limit,
            "num_fewshot": 0,
            "max_gen_toks": 16,
        },
        "optimizer": {"sampler": "cmaes", "seed": 0},
        "budget": {"max_trials": trials},
    }


def _exe() -> str:
    return str(Path(sys.executable).parent / "mergekit-evo")


def _expected_champion(run: Path, done: list[Any]) -> Any:
    """The trial the outputs must name: the best fitness, or with confirm scores (issue 17's
    winner's curse) the best accuracy over fitness and confirm questions together among the
    confirmed trials (ties: the earliest), recomputed here from the study's own records."""
    study = _study(run)
    confirm = (study.user_attrs.get("confirm") if study is not None else None) or {}
    scores = {int(k): v for k, v in confirm.items()}
    pooled = []
    for t in done:
        e, n = scores.get(t.number), t.user_attrs.get("questions")
        if e is not None and n:
            f = float(t.user_attrs["fitness"])
            p = (f * n + e["score"] * e["questions"]) / (n + e["questions"])
            pooled.append((p, -t.number, t))
    if pooled:
        return max(pooled, key=lambda x: x[:2])[2]
    return max(done, key=lambda t: (t.user_attrs["fitness"], -t.number))


def _study(run: Path) -> Any:
    """The run's PS study, or None when the run was killed before it created one."""
    import optuna

    from mergekit_evo.search.fleet.storage import open_storage

    info = json.loads((run / "run.json").read_text())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        store = open_storage(info["storage"])
        return optuna.load_study(study_name=info["studies"]["ps"], storage=store)
    except KeyError:  # killed after run.json, before the study was created: no trials yet
        return None


def _study_trials(run: Path) -> list[Any]:
    study = _study(run)
    return study.get_trials(deepcopy=True) if study is not None else []


def _params_key(t: Any) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(t.params.items()))


def _same_models(recipe: dict[str, Any]) -> Any:
    """A recipe with model paths cut to their folder names (best.yml writes them relative)."""
    if isinstance(recipe, dict):
        return {
            k: Path(v).name
            if k in ("model", "base_model") and isinstance(v, str)
            else _same_models(v)
            for k, v in recipe.items()
        }
    if isinstance(recipe, list):
        return [_same_models(v) for v in recipe]
    return recipe


def whole_file_problems(run: Path) -> list[str]:
    """Outputs that exist but are not whole (a reader would choke on them)."""
    from mergekit_evo.preflight import safetensors_problem
    from mergekit_evo.report.card import CARD_LAST_LINE

    bad: list[str] = []

    def parse(name: str, load: Any) -> None:
        p = run / name
        if not p.exists():
            return
        try:
            if load(p.read_text(encoding="utf-8")) in (None, "", []):
                bad.append(f"{name}: empty")
        except Exception as e:  # any parse failure is a half-written file
            bad.append(f"{name}: {type(e).__name__}: {e}")

    parse("best.yml", yaml.safe_load)
    parse("metrics.json", json.loads)
    parse("champion.json", json.loads)
    parse("trials.csv", lambda s: list(csv.DictReader(io.StringIO(s))) or None)
    parse("report.md", str.strip)
    parse("report.html", lambda s: s if s.rstrip().endswith("</html>") else None)
    for png in sorted((run / "plots").glob("*.png")):
        data = png.read_bytes()
        if not (data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(PNG_END)):
            bad.append(f"plots/{png.name}: not a whole PNG ({len(data)} bytes)")
    champ = run / "champion"
    card = champ / "README.md"
    if card.exists() and not card.read_text(encoding="utf-8").rstrip().endswith(CARD_LAST_LINE):
        bad.append("champion/README.md: empty or cut short")
    if champ.exists():
        try:
            json.loads((champ / "config.json").read_text())
        except Exception as e:
            bad.append(f"champion/config.json: {type(e).__name__}: {e}")
        weights = sorted(champ.glob("*.safetensors"))
        if not weights:
            bad.append("champion/: no safetensors file")
        bad += [f"champion/{w.name}: {why}" for w in weights if (why := safetensors_problem(w))]
    return bad


def _leftover_temp(run: Path) -> int:
    """Temporary files of interrupted atomic writes (harmless: never read, never renamed)."""
    folders = (run, run / "trials", run / "plots", run / "champion")
    return sum(1 for d in folders for p in d.glob(".*") if p.name not in (".lock",) and p.is_file())


def soak(
    out: Path,
    kills: int = 20,
    trials: int = 120,
    limit: int = 10,
    seed: int = 0,
    min_delay: float = 1.0,
    max_delay: float = 25.0,
    zoo: Path = ZOO,
    log: Any = print,
) -> dict[str, Any]:
    """Run the soak; returns the figures and every violation found (``violations`` empty = ok)."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    cfg = out / "soak.yml"
    cfg.write_text(yaml.safe_dump(soak_config(zoo, trials, limit), sort_keys=False))
    run = out / "run"
    cmd = [_exe(), "search", str(cfg), "--out", str(run), "--save-champion"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    violations: list[str] = []
    complete: dict[int, tuple[Any, float]] = {}  # number -> (params, fitness) seen COMPLETE
    rounds: list[dict[str, Any]] = []
    t_start = time.monotonic()
    for k in range(kills):
        delay = rng.uniform(min_delay, max_delay)
        round_start = datetime.now()
        with tempfile.TemporaryFile("w+") as stdout:
            proc = subprocess.Popen(
                cmd, stdout=stdout, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
            try:
                proc.wait(timeout=delay)
                finished = True
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                finished = False
            stdout.seek(0)
            text = stdout.read()
        printed = {int(m.group(1)) for line in text.splitlines() if (m := SCORED.match(line))}
        state = "finished" if finished else "killed"
        if finished:  # the budget ran out before the kill: the soak needs more trials
            violations.append(f"round {k}: search finished before its kill; raise --trials")
            break
        problems = whole_file_problems(run)
        violations += [f"round {k}: not whole: {p}" for p in problems]
        now = {t.number: t for t in _study_trials(run)} if (run / "run.json").exists() else {}
        for n, (params, fit) in complete.items():
            t = now.get(n)
            if t is None or t.state.name != "COMPLETE" or t.params != params:
                violations.append(f"round {k}: completed trial {n} lost")
            elif t.user_attrs.get("fitness") != fit:
                violations.append(f"round {k}: trial {n} fitness changed")
        for n in printed:
            t = now.get(n)
            if t is None or t.state.name != "COMPLETE":
                violations.append(f"round {k}: trial {n} printed as scored but not COMPLETE")
        for t in now.values():
            if t.state.name == "COMPLETE":
                complete[t.number] = (t.params, t.user_attrs.get("fitness"))
        # a trial this round's process had started and not finished: the kill fell mid-trial
        started = [t for t in now.values() if t.datetime_start and t.datetime_start >= round_start]
        running = sum(t.state.name == "RUNNING" for t in started)
        phase = "mid-trial" if running else ("between trials" if started else "start-up")
        rounds.append(
            {
                "round": k,
                "delay_s": round(delay, 2),
                "state": state,
                "scored_this_round": len(printed),
                "complete_total": len(complete),
                "phase": phase,
                "baselines_done": "baseline" in text,
            }
        )
        log(
            f"round {k:2d}: {state} after {delay:5.1f} s ({phase}), {len(printed)} trial(s) "
            f"scored, {len(complete)} complete in all"
            + (f", NOT WHOLE: {problems}" if problems else "")
        )
    # the last run finishes the budget
    final = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if final.returncode != 0:
        violations.append(f"final run exited {final.returncode}: {final.stderr[-2000:]}")
    trials_all = _study_trials(run)
    done = [t for t in trials_all if t.state.name == "COMPLETE"]
    interrupted = [t for t in trials_all if t.user_attrs.get("interrupted")]
    for n, (params, fit) in complete.items():
        t = next((x for x in done if x.number == n), None)
        if t is None or t.params != params or t.user_attrs.get("fitness") != fit:
            violations.append(f"final: completed trial {n} lost or changed")
    keys = [_params_key(t) for t in done]
    duplicated = len(keys) - len(set(keys))
    if duplicated:
        violations.append(f"final: {duplicated} parameter set(s) evaluated twice")
    counted = len(done) + sum(
        t.state.name == "FAIL" and not t.user_attrs.get("interrupted") for t in trials_all
    )
    if counted != trials:
        violations.append(f"final: {counted} trials count against the budget, not {trials}")
    best = _expected_champion(run, done)
    problems = whole_file_problems(run)
    violations += [f"final: not whole: {p}" for p in problems]
    metrics = json.loads((run / "metrics.json").read_text())
    header = (run / "best.yml").read_text().splitlines()[0]
    champ = json.loads((run / "champion.json").read_text())
    if metrics.get("champion_trial") != best.number:
        violations.append(f"final: metrics.json names trial {metrics.get('champion_trial')}")
    if metrics.get("champion_fitness") != best.user_attrs["fitness"]:
        violations.append("final: metrics.json champion_fitness is not the champion's fitness")
    if f"trial {best.number}," not in header:
        violations.append(f"final: best.yml header {header!r} is not trial {best.number}")
    if _same_models(yaml.safe_load((run / "best.yml").read_text())) != _same_models(
        best.user_attrs["recipe"]
    ):
        violations.append("final: best.yml is not the best trial's recipe")
    if champ.get("trial") != best.number:
        violations.append(f"final: champion.json names trial {champ.get('trial')}")
    rows = list(csv.DictReader((run / "trials.csv").open()))
    asked = [t for t in trials_all if t.state.name != "WAITING"]  # queued, never asked: no row
    if len(rows) != len(asked):
        violations.append(f"final: trials.csv has {len(rows)} rows for {len(asked)} trials")
    killed_rounds = [r for r in rounds if r["state"] == "killed"]
    return {
        "kills": len(killed_rounds),
        "kills_at_start_up": sum(r["phase"] == "start-up" for r in killed_rounds),
        "kills_mid_trial": sum(r["phase"] == "mid-trial" for r in killed_rounds),
        "kills_between_trials": sum(r["phase"] == "between trials" for r in killed_rounds),
        "rounds_without_a_scored_trial": sum(r["scored_this_round"] == 0 for r in killed_rounds),
        "trials_budget": trials,
        "trials_completed": len(done),
        "trials_interrupted": len(interrupted),
        "trials_in_study": len(trials_all),
        "lost": sum("lost" in v for v in violations),
        "duplicated": duplicated,
        "not_whole": sum("not whole" in v for v in violations),
        "temp_files_left": _leftover_temp(run),
        "best_trial": best.number,
        "best_fitness": best.user_attrs["fitness"],
        "final_best_is_best_completed": not any(
            v.startswith("final: ") and ("names" in v or "best" in v) for v in violations
        ),
        "wall_s": round(time.monotonic() - t_start, 1),
        "seed": seed,
        "delays_s": [min_delay, max_delay],
        "rounds": rounds,
        "violations": violations,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--trials", type=int, default=120, help="the search's budget.max_trials")
    ap.add_argument("--limit", type=int, default=10, help="fitness questions per trial")
    ap.add_argument("--seed", type=int, default=0, help="seeds the kill delays")
    ap.add_argument("--min-delay", type=float, default=1.0)
    ap.add_argument("--max-delay", type=float, default=25.0)
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-"))
    res = soak(
        out,
        kills=args.kills,
        trials=args.trials,
        limit=args.limit,
        seed=args.seed,
        min_delay=args.min_delay,
        max_delay=args.max_delay,
    )
    summary = {k: v for k, v in res.items() if k != "rounds"}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 1 if res["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
