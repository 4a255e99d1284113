"""``benchmarks/candidate_cost.py --quick`` runs end to end on CPU (a smoke test: no timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_candidate_cost_quick_writes_the_issue_keys(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "MERGEKIT_EVO_DATA": os.environ.get("MERGEKIT_EVO_DATA", "")}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "candidate_cost.py"), "--quick",
           "--stages", "0.37b", "--skip-equality", "--work", str(tmp_path / "w"),
           "--json", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    block = doc["0.37b"]
    keys = ("ours_s", "mergekit_ondisk_s", "ratio", "merge_s", "decode_step_ms", "prefill_s",
            "dfs_setup_s", "scores_equal", "ours_1000q_s", "card", "date", "command")  # fmt: skip
    for key in keys:
        assert block[key] is not None, key
        assert key not in ("ours_s", "merge_s", "ours_1000q_s") or doc[key] == block[key]
    assert block["merge_path"] == "batched"  # the batched kernels, not MergeKit's tasks
    assert block["scores"]["ours"] and block["scores"]["mergekit"]
    assert {g["goal"] for g in doc["goals"]} and block["q1000"]["questions"] == 12
    assert block["memory"]["rank_cache"]["need"] > 0  # TIES over two sources: ranks kept
    profiles = block["kernel_profiles"]  # on CPU: the ops of a decode step and of a prefill
    assert profiles["decode_step"]["kernels"] > 0 and profiles["prefill"]["rows"] == 4, profiles
    md = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "candidate_cost.py"), "--render", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "| goal | measured |" in md.stdout and "0.37B decode step, batch 4" in md.stdout
