"""SIGKILL a running search, rerun the same command: nothing repeated, budget met, CMA continues."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from mergekit_evo.search.fleet.recovery import INTERRUPTED
from mergekit_evo.search.fleet.storage import open_storage
from tests.search.family import write_config

MERGEKIT_EVO = Path(sys.executable).parent / "mergekit-evo"
BUDGET = 15


def _cmd(cfg: Path, run: Path) -> list[str]:
    return [str(MERGEKIT_EVO), "search", str(cfg), "--out", str(run)]


def _study(run: Path) -> optuna.Study:
    info = json.loads((run / "run.json").read_text())
    store = open_storage(info["storage"])
    return optuna.load_study(study_name=info["studies"]["ps"], storage=store)


def _gen(t: optuna.trial.FrozenTrial) -> int | None:
    return t.system_attrs.get("cma:generation")


def test_sigkill_then_resume(family, tmp_path):
    cfg = write_config(tmp_path / "ps.yml", family, "ps", budget={"max_trials": BUDGET})
    run = tmp_path / "run"
    proc = subprocess.Popen(
        _cmd(cfg, run), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    # trial 10 is in CMA generation 1 (population 4: trials 0-4 are the standard start points,
    # 5-8 CMA-ES generation 0, 9-12 generation 1)
    target = run / "trials" / "00010.yml"
    deadline = time.monotonic() + 240
    while not target.exists():
        assert proc.poll() is None, "search ended before it could be killed"
        assert time.monotonic() < deadline, "search too slow to reach trial 10"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    before = _study(run).get_trials(deepcopy=True)
    done_before = [t for t in before if t.state == TrialState.COMPLETE]
    killed = [t for t in before if t.state == TrialState.RUNNING]
    assert len(done_before) < BUDGET
    assert killed, "the kill should land while a trial is running"
    gen_at_kill = max(g for t in before if (g := _gen(t)) is not None)
    assert gen_at_kill >= 1
    assert not (run / "metrics.json").exists()

    # the same command again resumes and finishes
    res = subprocess.run(_cmd(cfg, run), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resume: 1 interrupted trial(s)" in res.stdout

    after = _study(run).get_trials(deepcopy=True)
    complete = [t for t in after if t.state == TrialState.COMPLETE]
    assert len(complete) == BUDGET  # the budget counts completed trials, killed one excluded
    # trials completed before the kill are untouched and never evaluated again
    by_number = {t.number: t for t in after}
    for t in done_before:
        assert by_number[t.number].state == TrialState.COMPLETE
        assert by_number[t.number].params == t.params
    keys = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(keys)) == len(keys), "a parameter set was evaluated twice"
    # the killed trial is failed with a reason, and its point was asked again exactly once
    for k in killed:
        dead = by_number[k.number]
        assert dead.state == TrialState.FAIL
        assert dead.user_attrs["fail_reason"] == INTERRUPTED
        retries = [t for t in complete if t.user_attrs.get("retry_of") == k.number]
        assert len(retries) == 1 and retries[0].params == k.params
    # CMA-ES state was restored, not restarted: generations go on from where the kill left them
    new = sorted(
        (t for t in after if t.number > max(x.number for x in before)), key=lambda t: t.number
    )
    gens = [g for t in new if (g := _gen(t)) is not None]
    assert gens and gens[0] >= gen_at_kill
    assert max(gens) > gen_at_kill
    assert gens == sorted(gens)
    assert (run / "metrics.json").exists() and (run / "best.yml").exists()
    csv_rows = (run / "trials.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + len(after)
