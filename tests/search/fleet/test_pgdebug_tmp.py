"""A search and a worker on two processes share one study through PostgreSQL.

Needs a server: ``MERGEKIT_EVO_TEST_POSTGRES=$(bash .ci/postgres.sh)``; skipped otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.search.family import write_config

URL = os.environ.get("MERGEKIT_EVO_TEST_POSTGRES")
EXE = Path(sys.executable).parent / "mergekit-evo"
BUDGET = 14

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not URL, reason="MERGEKIT_EVO_TEST_POSTGRES is not set"),
]


def test_search_and_worker_share_one_study(family, tmp_path):
    name = f"evo-test-{uuid.uuid4().hex[:10]}"
    cfg = write_config(
        tmp_path / "ps.yml", family, "ps", budget={"max_trials": BUDGET}, study_name=name
    )
    worker = subprocess.Popen(
        [str(EXE), "worker", str(cfg), "--storage", URL, "--out", str(tmp_path / "w")],
        stdout=open("/tmp/pgt/worker.log", "w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    search = subprocess.run(
        [str(EXE), "search", str(cfg), "--out", str(tmp_path / "s"), "--storage", URL],
        capture_output=True,
        text=True,
        timeout=240,
    )
    worker.wait(timeout=240)
    open("/tmp/pgt/search.log", "w").write(search.stdout + search.stderr)
    assert search.returncode == 0, search.stderr[-3000:]
    assert worker.returncode == 0

    from mergekit_evo.search.fleet.storage import storage_url

    study = optuna.load_study(study_name=f"{name}-ps", storage=storage_url(URL))
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # the budget is the study's: a trial asked over it is given back unevaluated
    assert len(complete) == BUDGET
    assert all(t.user_attrs.get("over_budget") for t in trials if t.state == TrialState.FAIL)
    # every standard start point scored once (from the queue, by either process), then CMA-ES
    labels = [t.user_attrs["start_label"] for t in trials if t.user_attrs.get("start_point")]
    assert labels and len(labels) == len(set(labels))
    assert all(t.user_attrs.get("start_point") for t in trials[: len(labels)])
    keys = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(keys)) == len(keys)
    # both processes evaluated trials, and every trial YAML lives in exactly one run dir
    mine = {p.name for p in (tmp_path / "s" / "trials").iterdir()}
    theirs = {p.name for p in (tmp_path / "w" / "trials").iterdir()}
    assert mine and theirs and not (mine & theirs)
    asked = [t for t in trials if not t.user_attrs.get("over_budget")]
    assert len(mine | theirs) == len(asked)  # a trial given back is never written or merged
    gens = {t.system_attrs.get("cma:generation") for t in complete} - {None}
    assert len(gens) >= 2  # CMA-ES generations advanced across both processes
    assert (tmp_path / "s" / "metrics.json").exists()
    # rerun without --storage: run.json remembers the PostgreSQL study, nothing new to do
    again = subprocess.run(
        [str(EXE), "search", str(cfg), "--out", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert not (tmp_path / "s" / "study.db").exists()
    assert len(study.get_trials()) == len(trials)
    optuna.delete_study(study_name=f"{name}-ps", storage=storage_url(URL))


def test_worker_scores_the_dfs_polish(family, tmp_path):
    """With the default DFS stage (the polish), a worker scores queued moves alongside the
    search process, which alone chooses them; no move is scored twice."""
    name = f"evo-test-{uuid.uuid4().hex[:10]}"
    cfg = write_config(
        tmp_path / "dfs.yml", family, "dfs", budget={"max_trials": 30}, study_name=name
    )
    search = subprocess.Popen(
        [str(EXE), "search", str(cfg), "--out", str(tmp_path / "s"), "--storage", URL],
        stdout=open("/tmp/pgt/worker.log", "w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker = subprocess.run(
        [str(EXE), "worker", str(cfg), "--storage", URL, "--out", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    out, err = search.communicate(timeout=240)
    assert search.returncode == 0, err[-3000:]
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert "stop (polish)" in worker.stdout + worker.stderr

    from mergekit_evo.search.fleet.storage import storage_url

    study = optuna.load_study(study_name=f"{name}-dfs", storage=storage_url(URL))
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    moves = [t for t in complete if t.user_attrs.get("polish")]
    assert moves
    keys = [tuple(sorted(t.params.items())) for t in moves]
    assert len(set(keys)) == len(keys)
    mine = {p.name for p in (tmp_path / "s" / "trials").iterdir()}
    theirs = {p.name for p in (tmp_path / "w" / "trials").iterdir()}
    assert mine and theirs and not (mine & theirs)
    assert study.user_attrs.get("polish_done")
    optuna.delete_study(study_name=f"{name}-dfs", storage=storage_url(URL))
