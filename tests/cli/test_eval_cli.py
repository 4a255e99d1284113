"""``mergekit-evo eval`` on a tiny random model, offline, from the real GSM8K/MGSM files."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mergekit_evo.cli import main

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(TESTS))
    from tiny_models import make_model

    out = tmp_path_factory.mktemp("tiny_eval")
    make_model(out)
    return out


@pytest.fixture(autouse=True)
def _offline_real_data(monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.environ.get("MERGEKIT_EVO_DATA") or str(TESTS.parent.parent / "shared" / "data")
    monkeypatch.setenv("MERGEKIT_EVO_DATA", str(Path(data).resolve()))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


ARGS = ["--limit", "2", "--num-fewshot", "0", "--max-gen-toks", "4", "--batch-size", "2"]


def test_eval_json_has_one_key_per_task(tiny_dir: Path) -> None:
    tasks = "evo_gsm8k,evo_mgsm_direct_ja"
    result = CliRunner().invoke(main, ["eval", str(tiny_dir), "--tasks", tasks, *ARGS, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"evo_gsm8k", "evo_mgsm_direct_ja"}
    assert set(out["evo_gsm8k"]) == {
        "exact_match,strict-match",
        "exact_match,flexible-extract",
        "exact_match,numeric",
    }
    for metrics in out.values():
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in metrics.values())


def test_eval_text_output_and_report_split_allowed(tiny_dir: Path) -> None:
    result = CliRunner().invoke(
        main, ["eval", str(tiny_dir), "--tasks", "evo_mgsm_direct_en_heldout", *ARGS]
    )
    assert result.exit_code == 0, result.output
    assert "evo_mgsm_direct_en_heldout: exact_match,numeric = " in result.stdout
    assert "score (weighted mean) = " in result.stdout


def test_eval_unknown_task_is_a_clear_error(tiny_dir: Path) -> None:
    result = CliRunner().invoke(main, ["eval", str(tiny_dir), "--tasks", "evo_mgsm_direct_jp"])
    assert result.exit_code != 0
    assert "unknown task 'evo_mgsm_direct_jp'" in result.output
    assert "evo_mgsm_direct_ja" in result.output
