"""A run directory resumes only over the weights its study was scored on (issue 13: a zoo
rebuilt in place under a finished search was resumed and silently re-ranked)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from mergekit_evo.config import ConfigError, load_search_config
from mergekit_evo.search import run_search
from mergekit_evo.search.rundir.model_fingerprint import folder_fingerprint
from tests.search.family import write_config


def _perturb(folder: Path) -> None:
    """Same names, shapes and file size; different values (a rebuild in place)."""
    f = folder / "model.safetensors"
    tensors = {k: v + 0.01 for k, v in load_file(str(f)).items()}
    size = f.stat().st_size
    save_file(tensors, str(f), metadata={"format": "pt"})
    assert f.stat().st_size == size


def test_fingerprint_follows_the_bytes_not_the_path(family, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(family["math"], copy)
    assert folder_fingerprint(copy) == folder_fingerprint(family["math"])
    _perturb(copy)
    assert folder_fingerprint(copy) != folder_fingerprint(family["math"])


def test_resume_over_changed_weights_is_refused(family, tmp_path: Path) -> None:
    models = tmp_path / "models"
    fam = {k: models / k for k in family}
    for k, src in family.items():
        shutil.copytree(src, fam[k])
    cfg = load_search_config(write_config(tmp_path / "ps.yml", fam, "ps", budget={"max_trials": 2}))
    run = tmp_path / "run"
    run_search(cfg, run, log=lambda s: None)
    recorded = json.loads((run / "run.json").read_text())["models"]
    assert set(recorded) == {str(fam["math"]), str(fam["lang"]), str(fam["base"])}

    run_search(cfg, run, log=lambda s: None)  # same weights: resumes
    _perturb(fam["lang"])
    with pytest.raises(ConfigError) as err:
        run_search(cfg, run, log=lambda s: None)
    assert "models.lang" in str(err.value) and str(fam["lang"]) in str(err.value)
    assert json.loads((run / "run.json").read_text())["models"] == recorded
