"""The Python-API scripts in examples/ run on the committed zoo (tiny budgets)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script", ["api_ps_search.py", "api_from_recipe.py"])
def test_example_runs(script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "run"
    argv = [script, "--out", str(out), "--max-trials", "2", "--limit", "5"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(REPO / "examples" / script), run_name="__main__")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["champion_fitness"] is not None and (out / "report.html").exists()
    if script == "api_from_recipe.py":
        assert metrics["start_fitness"] is not None
