"""Model paths the project writes into a YAML are plainly local to MergeKit.

MergeKit's model card asks the hub about an existing path with at most one ``/`` (``models/math``,
``c_model``; ``mergekit/card.py``, ``is_hf``), so ``mergekit-yaml best.yml`` failed offline for a
search whose models sit one folder down.  Written as ``./models/math`` they are local."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from mergekit_evo.recipe_paths import local_reference, map_models, portable
from tests.search.family import make_family

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_relative_paths_get_a_dot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "math").mkdir(parents=True)
    assert portable(str(tmp_path / "models" / "math")) == "./models/math"
    assert portable(str(tmp_path / "models")) == "./models"
    assert portable("/elsewhere/math") == "/elsewhere/math"  # outside the folder: as given
    assert portable("org/hub-model") == "org/hub-model"  # a hub id stays a hub id
    assert [local_reference(p) for p in ("m", "a/b", "./a", "../a", ".")] == [
        "./m", "./a/b", "./a", "../a", ".",
    ]  # fmt: skip
    # ps_dfs stage names are names, not paths, even when a folder of that name exists
    (tmp_path / "ps").mkdir()
    doc = {"merge_method": "ps_dfs", "parameters": {"dfs_models": ["ps", str(tmp_path / "ps")]}}
    assert map_models(doc, portable)["parameters"]["dfs_models"] == ["ps", "./ps"]


def test_mergekit_yaml_best_yml_offline_with_models_one_folder_down(tmp_path):
    """A search run in a folder whose models are ``models/math``, ``models/base`` and
    ``c_model``; then ``HF_HUB_OFFLINE=1 mergekit-yaml best.yml`` from that folder, with
    MergeKit's model card on (its default)."""
    work = tmp_path / "work"
    fam = make_family(work / "models")
    shutil.move(str(fam["lang"]), str(work / "c_model"))
    cfg = {
        "mode": "ps",
        "models": {"math": "models/math", "lang": "c_model"},
        "base_model": "models/base",
        "ps": {"method": "dare_ties"},
        "fitness": {"function": "tests.search.fitness_fns:mean_logit_norm", "tasks": []},
        "optimizer": {"population_size": 4},
        "budget": {"max_trials": 2},
        "start_points": {"enabled": False},
        "baselines": False,
    }
    (work / "search.yml").write_text(yaml.safe_dump(cfg))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run(
        [str(BIN / "mergekit-evo"), "search", "search.yml", "--out", "run", "-q"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    best = yaml.safe_load((work / "run" / "best.yml").read_text())
    assert best["base_model"] == "./models/base"
    assert sorted(m["model"] for m in best["models"]) == ["./c_model", "./models/math"]
    merged = subprocess.run(
        [str(BIN / "mergekit-yaml"), "run/best.yml", "merged", "--random-seed", "0"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert merged.returncode == 0, merged.stdout[-2000:] + merged.stderr[-2000:]
    assert list((work / "merged").glob("*.safetensors"))
    card = (work / "merged" / "README.md").read_text()
    assert "huggingface.co/models/math" not in card and "huggingface.co/c_model" not in card
