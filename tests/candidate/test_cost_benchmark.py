"""``benchmarks/candidate_cost.py --tiny`` runs end to end on CPU (a smoke test: no timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_candidate_cost_tiny_writes_the_issue_keys(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "MERGEKIT_EVO_DATA": os.environ.get("MERGEKIT_EVO_DATA", "")}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "candidate_cost.py"), "--tiny",
           "--skip-equality", "--work", str(tmp_path / "w"), "--json", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())["tiny"]
    for key in ("card", "mergekit_ondisk_s", "ours_s", "ratio", "merge_s", "dfs_setup_s"):
        assert doc[key] is not None, key
    assert doc["scores"]["ours"] and doc["scores"]["mergekit"]
