"""The shipped task names resolve through lm-eval's own CLI (``lm_eval --include_path``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mergekit_evo.fitness.registry import TASKS_DIR

from .conftest import DATA


def _script(name: str) -> str:
    """A console script of this environment (beside the interpreter), else from PATH."""
    found = Path(sys.executable).with_name(name)
    return str(found) if found.exists() else (shutil.which(name) or name)


@pytest.mark.parametrize("model", ["hf", "mergekit_evo"])
def test_lm_eval_cli_runs_shipped_task(tiny_model_dir: Path, tmp_path: Path, model: str) -> None:
    """lm-eval's own CLI: the shipped task, with its hf model and with ours (via the hook)."""
    include_path = subprocess.run(
        [_script("mergekit-evo"), "tasks", "--include-path"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(include_path) == TASKS_DIR
    env = {
        **os.environ,
        "MERGEKIT_EVO_DATA": str(DATA),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    cmd = [
        _script("lm_eval"),
        "--model", model,
        "--model_args", f"pretrained={tiny_model_dir}",
        "--include_path", include_path,
        "--tasks", "evo_gsm8k",
        "--limit", "2",
        "--num_fewshot", "0",
        "--gen_kwargs", "max_gen_toks=4",
        "--device", "cpu",
        "--batch_size", "2",
        "--output_path", str(tmp_path / "out"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    if proc.returncode != 0:
        pytest.fail(f"lm_eval failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    files = list((tmp_path / "out").rglob("results_*.json"))
    assert len(files) == 1, proc.stdout[-2000:]
    results = json.loads(files[0].read_text())["results"]["evo_gsm8k"]
    for key in ("exact_match,numeric", "exact_match,strict-match", "exact_match,flexible-extract"):
        assert 0.0 <= results[key] <= 1.0
