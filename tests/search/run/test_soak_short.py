"""The crash-safety soak's short version (benchmarks/soak_resume.py, 3 kills instead of 20):
SIGKILL ``mergekit-evo search`` on the zoo at random moments, resume, and check that no
completed trial is lost or evaluated twice, every output is whole, and the final best is the
best completed trial."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "benchmarks" / "soak_resume.py"


def _soak_module():
    spec = importlib.util.spec_from_file_location("soak_resume", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (REPO / "fixtures" / "zoo" / "math").is_dir(), reason="no zoo")
def test_three_kills_lose_nothing(tmp_path):
    # 160 trials: on a quiet 2-core machine three rounds of 6-15 s score ~65 trials, and a
    # budget reached before a kill is a violation (80 left too thin a margin in a CI run)
    soak = _soak_module()
    res = soak.soak(
        tmp_path, kills=3, trials=160, limit=4, seed=1, min_delay=6.0, max_delay=15.0,
        log=lambda s: None,
    )  # fmt: skip
    assert res["violations"] == []
    assert res["kills"] == 3
    assert (res["lost"], res["duplicated"], res["not_whole"]) == (0, 0, 0)
    assert res["trials_completed"] + res["trials_interrupted"] == res["trials_in_study"]
    assert res["final_best_is_best_completed"]


def test_whole_file_check_catches_half_written_outputs(tmp_path):
    soak = _soak_module()
    (tmp_path / "metrics.json").write_text('{"champion_fitness": 0.5, "tri')
    (tmp_path / "best.yml").write_text("merge_method: [dare_ties\n")
    champ = tmp_path / "champion"
    champ.mkdir()
    (champ / "config.json").write_text("{}")
    (champ / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    (champ / "README.md").write_text("---\nbase_model: x\n---\n\n# mergekit-evo champ")
    (tmp_path / "report.html").write_text("<!doctype html><html><head><meta charset='utf-8'>")
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "fitness.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (plots / "whole.png").write_bytes(b"\x89PNG\r\n\x1a\n" + soak.PNG_END)
    bad = soak.whole_file_problems(tmp_path)
    assert {b.split(":")[0] for b in bad} == {
        "best.yml",
        "metrics.json",
        "champion/model.safetensors",
        "champion/README.md",
        "report.html",
        "plots/fitness.png",
    }, bad
