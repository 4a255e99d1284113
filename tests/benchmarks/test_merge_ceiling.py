"""benchmarks/merge_ceiling.py on the committed zoo: a 2x2 grid on a few questions of each split,
the oracle picked on held-out, the pick on the search split, and the hand merge among them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_merge_ceiling_small_grid(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "merge_ceiling.py"),
         "--zoo", "fixtures/zoo-paths", "--weights", "0.5,1",
         "--limit", "6", "--heldout-limit", "6", "--batch-size", "6",
         "--work", str(tmp_path / "w"), "--json", str(out), "--md", str(tmp_path / "c.md")],
        check=True, capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    (z,) = json.loads(out.read_text())["zoos"]
    assert set(z["grid"]) == {"0.5,0.5", "0.5,1", "1,0.5", "1,1"}
    assert z["hand"] == z["grid"]["1,1"]
    best_held = max(v["heldout"] for v in z["grid"].values())
    assert z["oracle"]["heldout"] == best_held
    assert z["picked"]["search"] == max(v["search"] for v in z["grid"].values())
    assert z["oracle_minus_hand"] == best_held - z["hand"]["heldout"] >= 0
    assert "| fixtures/zoo-paths |" in (tmp_path / "c.md").read_text()
