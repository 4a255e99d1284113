"""Several worker processes on one study: the budget is exact, and a worker SIGKILLed mid-trial
loses nothing (its trial is found by its stale heartbeat and asked again, once).

``mergekit-evo search --workers 3`` runs the same code path as ``--gpus 0,1,2`` on a GPU host
(one process per GPU); here the three processes share the machine's CPU.  The journal-storage
tests always run; the PostgreSQL one needs ``MERGEKIT_EVO_TEST_POSTGRES``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from safetensors.torch import load_file

from mergekit_evo.search.fleet.budget import OVER_BUDGET
from mergekit_evo.search.fleet.processes import Fleet, resolve_gpus
from mergekit_evo.search.fleet.recovery import INTERRUPTED
from mergekit_evo.search.fleet.storage import HEARTBEAT_ENV, open_storage
from tests.search.family import write_config

BIN = Path(sys.executable).parent
URL = os.environ.get("MERGEKIT_EVO_TEST_POSTGRES")
BUDGET = 20
HEARTBEAT_S = "2"  # grace period 8 s: a dead worker's trial is re-asked after that


def _search(cfg: Path, run: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [str(BIN / "mergekit-evo"), "search", str(cfg), "--out", str(run), "--workers", "3"]
    return subprocess.Popen(
        [*cmd, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, HEARTBEAT_ENV: HEARTBEAT_S},
    )


def _config(tmp_path: Path, family: dict[str, Path], **extra: object) -> Path:
    return write_config(
        tmp_path / "ps.yml",
        family,
        "ps",
        budget={"max_trials": BUDGET},
        baselines=False,
        **extra,
    )


def _study(spec: str, name: str, deadline: float) -> optuna.Study:
    while True:
        try:
            return optuna.load_study(study_name=name, storage=open_storage(spec))
        except (KeyError, FileNotFoundError):
            assert time.monotonic() < deadline, "the search never created its study"
            time.sleep(0.1)


def _kill_a_worker_mid_trial(
    proc: subprocess.Popen[str], spec: str, name: str
) -> tuple[optuna.trial.FrozenTrial, int]:
    """SIGKILL a child worker (not the search process) while it runs a trial."""
    deadline = time.monotonic() + 240
    study = _study(spec, name, deadline)
    tried: set[int] = set()
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the search ended before a worker could be killed"
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            key = t.user_attrs.get("worker")
            pid = int(key.rsplit(":", 1)[1]) if key else proc.pid
            if pid == proc.pid or pid in tried:
                continue
            os.kill(pid, signal.SIGKILL)
            tried.add(pid)
            time.sleep(0.3)
            now = study.get_trials(deepcopy=False)[t.number]
            if now.state == TrialState.RUNNING:  # it died holding the trial: mid-trial
                return now, pid
        time.sleep(0.02)
    pytest.fail("no worker could be killed in the middle of a trial")


def _check_nothing_lost(study: optuna.Study, killed: optuna.trial.FrozenTrial) -> None:
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == BUDGET  # exact: not one evaluation more or less
    keys = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(keys)) == len(keys), "a parameter set was evaluated twice"
    for t in trials:  # every trial is complete, or failed without counting
        assert t.state in (TrialState.COMPLETE, TrialState.FAIL), (t.number, t.state)
        if t.state == TrialState.FAIL:
            assert t.user_attrs.get("interrupted") or t.user_attrs.get(OVER_BUDGET), t.number
            assert t.user_attrs.get("fitness") is None  # never scored
    dead = study.get_trials()[killed.number]
    assert dead.state == TrialState.FAIL and dead.user_attrs["fail_reason"] == INTERRUPTED
    retries = [t for t in complete if t.user_attrs.get("retry_of") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert sum(bool(t.user_attrs.get("interrupted")) for t in trials) == 1


def _check_champion_rebuilds(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "rebuilt"
    subprocess.run(
        [str(BIN / "mergekit-yaml"), str(run / "best.yml"), str(out), "--random-seed", "0"],
        check=True,
        capture_output=True,
    )
    a, b = ({} for _ in range(2))
    for folder, d in ((run / "champion", a), (out, b)):
        for f in sorted(folder.glob("*.safetensors")):
            d.update(load_file(f))
    assert a.keys() == b.keys() and a
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _run_kill_test(cfg: Path, run: Path, tmp_path: Path, spec: str, name: str, *extra: str):
    proc = _search(cfg, run, "--save-champion", *extra)
    killed, pid = _kill_a_worker_mid_trial(proc, spec, name)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert "died (SIGKILL)" in out
    assert f"re-queued 1 trial(s) of a dead worker: [{killed.number}]" in out, out
    study = optuna.load_study(study_name=name, storage=open_storage(spec))
    _check_nothing_lost(study, killed)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["trials"]["ps"]["complete"] == BUDGET
    _check_champion_rebuilds(run, tmp_path)

    from mergekit_evo.cli.status import run_status

    seen = run_status(run, spec)["stages"]["ps"]
    assert seen["done"] == BUDGET and seen["max_trials"] == BUDGET
    by_pid = {w["pid"]: w for w in seen["workers"]}
    # the three processes, and the one started again for the killed child's slot if it
    # reached the study before the budget ran out
    restarted = re.search(r"restarted \(pid (\d+)\)", out)
    assert restarted, out[-3000:]
    assert {proc.pid, pid} <= set(by_pid) and len(by_pid) in (3, 4)
    assert len(by_pid) == 3 or int(restarted.group(1)) in by_pid
    assert by_pid[pid]["silent"] and not by_pid[proc.pid]["silent"]
    assert sum(w["trials_done"] for w in by_pid.values()) == BUDGET


def test_kill_one_of_three_workers_journal(family, tmp_path):
    """No server: the run directory's journal file, shared by the three local processes."""
    cfg = _config(tmp_path, family)
    run = tmp_path / "run"
    _run_kill_test(cfg, run, tmp_path, str(run / "study.journal"), "mergekit-evo-ps")
    assert json.loads((run / "run.json").read_text())["storage"] == str(run / "study.journal")


@pytest.mark.postgres
@pytest.mark.skipif(not URL, reason="MERGEKIT_EVO_TEST_POSTGRES is not set")
def test_kill_one_of_three_workers_postgres(family, tmp_path):
    name = f"evo-test-{uuid.uuid4().hex[:10]}"
    cfg = _config(tmp_path, family, study_name=name)
    try:
        _run_kill_test(cfg, tmp_path / "run", tmp_path, URL, f"{name}-ps", "--storage", URL)
    finally:
        from mergekit_evo.search.fleet.storage import storage_url

        optuna.delete_study(study_name=f"{name}-ps", storage=storage_url(URL))


def test_gpus_pin_one_gpu_per_process(monkeypatch):
    """``--gpus`` runs this process on the first GPU and one child per other GPU, each seeing
    only its own (the CPU tests run the same fleet with ``--workers``)."""
    assert resolve_gpus("0, 2,3") == ["0", "2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert resolve_gpus("all") == ["4", "5"]
    with pytest.raises(ValueError):
        resolve_gpus(",")
    fleet = Fleet.on_gpus(["4", "5", "7"])
    fleet.pin_self()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "4"
    assert [fleet.child_env(i)["CUDA_VISIBLE_DEVICES"] for i in (1, 2)] == ["5", "7"]
    assert fleet.child_env(1)["MERGEKIT_EVO_PARENT_PID"] == str(os.getpid())
    cpu = Fleet.on_cpu(3).child_env(2)
    assert cpu.get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")


def test_child_trial_lines_stay_trial_lines():
    """The parent's progress bar counts the children's trials too."""
    from mergekit_evo.search.fleet.processes import relayed
    from mergekit_evo.search.rundir.events import TrialLine

    ok = relayed("gpu 1", "trial    12  fitness 0.7100  best 0.7200  *  (1.3 s)")
    assert (
        isinstance(ok, TrialLine)
        and ok == "[gpu 1] trial    12  fitness 0.7100  best 0.7200  *  (1.3 s)"
    )
    assert (ok.number, ok.fitness, ok.best, ok.improved, ok.seconds) == (12, 0.71, 0.72, True, 1.3)
    bad = relayed("gpu 1", "trial     3  FAILED  ValueError: x  (0.4 s)")
    assert isinstance(bad, TrialLine) and bad.fitness is None and not bad.improved
    other = relayed("gpu 1", "stop (ps): budget: 20 trials done (max_trials 20)")
    assert not isinstance(other, TrialLine) and other.startswith("[gpu 1] stop")


def test_a_dead_child_is_restarted_at_most_max_restarts_times():
    """A child that keeps dying is started again for its GPU, each restart logged, until the
    cap; then its GPU is left idle (and said so).  A fake child that SIGKILLs itself."""
    lines: list[str] = []
    fleet = Fleet(["0", "1"], log=lines.append, max_restarts=2, restart_delay_s=0.05)
    suicide = "import os, signal; print('up', flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    fleet.start_children([sys.executable, "-c", suicide])
    deadline = time.monotonic() + 60
    while not any("not restarted" in s for s in lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    (child,) = fleet._children
    assert child.restarts == 2 and len(child.pids) == 3 and len(set(child.pids)) == 3
    assert [s for s in lines if "restarting it" in s] == [
        "[gpu 1] died (SIGKILL); its trial is re-asked once its heartbeat is stale; "
        f"restarting it ({k} of 2)"
        for k in (1, 2)
    ]
    assert sum(s == "[gpu 1] up" for s in lines) == 3  # every incarnation's lines relayed
    assert lines[-1].startswith("[gpu 1] died (SIGKILL); not restarted (2 restarts used)")
    assert fleet.child_env(1)["CUDA_VISIBLE_DEVICES"] == "1"  # the same GPU every time
    fleet.wait(timeout_s=5)


def test_no_restart_once_the_run_ends():
    """A child that dies after the run's stages ended (wait) or after an abort stays dead."""
    lines: list[str] = []
    fleet = Fleet([None, None], log=lines.append, restart_delay_s=0.05)
    fleet.start_children([sys.executable, "-c", "import time; time.sleep(30)"])
    fleet.abort()  # SIGINT: the sleeping child exits non-zero
    fleet.wait(timeout_s=10)
    assert fleet.restarts == {"worker 1": 0}
    assert not any("restart" in s for s in lines), lines


def test_sigkilled_child_of_a_cpu_fleet_is_restarted(family, tmp_path):
    """``search --workers 2``: SIGKILL the child worker once it works on the study; the run
    starts a new one for its slot, which joins the study and scores trials, and the budget is
    still exact with nothing evaluated twice."""
    budget = 30
    cfg = write_config(
        tmp_path / "ps.yml",
        family,
        "ps",
        budget={"max_trials": budget},
        baselines=False,
        fitness={"function": "tests.search.fitness_fns:slow_logit_norm", "tasks": []},
    )
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [str(BIN / "mergekit-evo"), "search", str(cfg), "--out", str(run), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, HEARTBEAT_ENV: HEARTBEAT_S},
    )
    name = "mergekit-evo-ps"
    study = _study(str(run / "study.journal"), name, time.monotonic() + 240)
    from mergekit_evo.search.fleet.workers import registry

    deadline = time.monotonic() + 240
    child = None
    while child is None and time.monotonic() < deadline:
        assert proc.poll() is None, "the search ended before its child joined"
        pids = {w.get("pid") for w in registry(study).values()} - {proc.pid}
        child = next(iter(pids), None)
        time.sleep(0.05)
    assert child is not None, "the child worker never joined the study"
    os.kill(child, signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert "[worker 1] died (SIGKILL)" in out and "restarting it (1 of 3)" in out, out[-3000:]
    m = re.search(r"\[worker 1\] restarted \(pid (\d+)\)", out)
    assert m, out[-3000:]
    new = int(m.group(1))
    study = optuna.load_study(study_name=name, storage=open_storage(str(run / "study.journal")))
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == budget
    keys = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(keys)) == len(keys), "a parameter set was evaluated twice"
    by = {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in complete}
    assert new in by, f"the restarted worker scored no trial: {sorted(by)}"
