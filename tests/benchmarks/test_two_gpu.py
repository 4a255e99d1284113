"""``benchmarks/two_gpu.py`` on CPU (``--cpu``: ``--workers 1`` then ``--workers 2``): the
script the lead runs on two GPUs works end to end and writes its JSON; the numbers say
nothing about GPUs (a smoke test, kept to CI speed with a Python fitness)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.search.family import make_family, write_config

REPO = Path(__file__).resolve().parents[2]
TRIALS = 6


def test_two_gpu_script_on_cpu_workers(tmp_path):
    fam = make_family(tmp_path / "fam")
    cfg = write_config(
        tmp_path / "ps.yml",
        fam,
        "ps",
        fitness={"function": "tests.search.fitness_fns:mean_logit_norm", "tasks": []},
        baselines=False,
    )
    out_json = tmp_path / "bench.json"
    out_json.write_text(json.dumps({"other_key": 1}) + "\n")  # kept: the script merges into it
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "two_gpu.py"), str(cfg), "--cpu",
         "--trials", str(TRIALS), "--out", str(tmp_path / "runs"), "--json", str(out_json)],
        capture_output=True, text=True, timeout=900, cwd=REPO, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "speed-up:" in proc.stdout
    doc = json.loads(out_json.read_text())
    assert doc["other_key"] == 1 and "two_gpu_speedup" in doc
    info = doc["two_gpu"]
    assert info["card"] == "cpu" and info["trials"] == TRIALS
    assert set(info["runs"]) == {"1", "2"}
    for label, r in info["runs"].items():
        assert r["trials"] == TRIALS, (label, r)  # every trial of the budget, once
        assert 1 <= r["workers"] <= int(label)
        assert r["wall_s"] > 0 and r["end_to_end_per_min"] > 0
    for run in ("run-1", "run-2"):
        assert (tmp_path / "runs" / run / "metrics.json").exists()
