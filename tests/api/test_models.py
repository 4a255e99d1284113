"""Models given to the API: folders, hub names in the local cache, objects in memory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from mergekit_evo.api import APIConfigError
from mergekit_evo.api.models import resolve_models

ZOO = Path(__file__).resolve().parents[2] / "fixtures" / "zoo"


@pytest.fixture(scope="module")
def math_model():
    import transformers

    return transformers.AutoModelForCausalLM.from_pretrained(ZOO / "math")


def _hub_cache(root: Path, repo: str, folder: Path) -> Path:
    """The local Hugging Face cache layout of one downloaded model (refs/main -> snapshot)."""
    entry = root / f"models--{repo.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text("0123456789abcdef0123456789abcdef01234567")
    snap = entry / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, snap)
    return snap


def test_folders_and_hub_names_resolve_without_download(tmp_path, monkeypatch):
    import huggingface_hub.constants

    snap = _hub_cache(tmp_path / "hub", "zoo-org/verbs", ZOO / "verbs")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    out = resolve_models([str(ZOO / "math"), "zoo-org/verbs"], tokenizer=None, run_dir=tmp_path)
    assert out.folders == {"math": str((ZOO / "math").resolve()), "verbs": str(snap)}
    assert out.in_memory == {}
    with pytest.raises(APIConfigError) as err:
        resolve_models(["zoo-org/absent"], tokenizer=None, run_dir=tmp_path)
    assert str(err.value).startswith("models[0]: 'zoo-org/absent' is neither a model folder")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (["/no/such/model"], "models[0]: '/no/such/model' is no such folder"),
        ([42], "models[0]: a int is not a model"),
        ("/a/folder", "models: give a list of models, not one"),
    ],
)
def test_bad_models_are_refused_before_anything_is_written(tmp_path, models, message):
    with pytest.raises(APIConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        resolve_models(models, tokenizer=None, run_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_in_memory_models_are_saved_once_and_reruns_keep_the_copy(tmp_path, math_model):
    import transformers

    out = resolve_models([math_model, str(ZOO / "base")], tokenizer=None, run_dir=tmp_path)
    assert not (tmp_path / "sources").exists()  # written only once the config checked out
    out.save()
    saved = tmp_path / "sources" / "math"
    assert list(out.folders) == ["math", "base"]  # the caller's order
    assert out.folders["math"] == str(saved.absolute())
    assert out.in_memory[str(saved.absolute())][0] is math_model
    assert (saved / "tokenizer.json").is_file()  # no tokenizer=: the model's own folder's
    again = transformers.AutoModelForCausalLM.from_pretrained(saved)
    for (k, a), b in zip(math_model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    stamp = (saved / "model.safetensors").stat().st_mtime_ns
    resolve_models([math_model], tokenizer=None, run_dir=tmp_path).save()  # same weights: kept
    assert (saved / "model.safetensors").stat().st_mtime_ns == stamp


def test_other_weights_into_a_started_run_are_refused(tmp_path, math_model):
    import transformers

    resolve_models([math_model], tokenizer=None, run_dir=tmp_path).save()
    (tmp_path / "run.json").write_text("{}")  # a search has started on the saved copy
    other = transformers.AutoModelForCausalLM.from_pretrained(ZOO / "math")
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    with pytest.raises(APIConfigError, match="holds other weights for this model"):
        resolve_models([other], tokenizer=None, run_dir=tmp_path).save()


def test_a_model_without_a_tokenizer_folder_needs_tokenizer(tmp_path, math_model):
    import transformers

    bare = transformers.AutoModelForCausalLM.from_config(math_model.config)
    bare.name_or_path = bare.config._name_or_path = ""  # built here: no folder behind it
    with pytest.raises(APIConfigError, match="tokenizer: models has a model in memory"):
        resolve_models([bare], tokenizer=None, run_dir=tmp_path)
