"""``mergekit-evo tasks``: the shipped task list and the folder for lm-eval."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mergekit_evo.cli import main


def test_lists_name_split_size_description() -> None:
    result = CliRunner().invoke(main, ["tasks"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["name", "split", "size", "description"]
    row = next(line for line in lines if line.startswith("evo_gsm8k_search "))
    assert row.split()[:3] == ["evo_gsm8k_search", "search", "1000"]
    row = next(line for line in lines if line.startswith("evo_mgsm_direct_ja "))
    assert row.split()[:3] == ["evo_mgsm_direct_ja", "test", "250"]
    assert any(line.startswith("evo_mgsm_direct_sw_heldout ") for line in lines)


def test_include_path_prints_only_the_folder() -> None:
    result = CliRunner().invoke(main, ["tasks", "--include-path"])
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1
    folder = Path(result.output.strip())
    assert folder.is_absolute() and (folder / "evo_gsm8k.yaml").is_file()


def test_json_and_split_filter() -> None:
    result = CliRunner().invoke(main, ["tasks", "--split", "search", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows and all(r["split"] == "search" for r in rows)
    names = {r["name"] for r in rows}
    assert {"evo_gsm8k_search", "evo_gsm8k_search_loglik", "evo_mgsm_direct_ja_search"} <= names
    assert "evo_gsm8k" not in names
