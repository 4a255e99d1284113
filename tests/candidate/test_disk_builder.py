"""The disk candidate builder: a recipe becomes a loaded model equal to what MergeKit wrote."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import make_model

from mergekit_evo.candidate import Candidate, CandidateBuilder, DiskCandidateBuilder


def test_build_loads_exactly_the_merged_weights(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_model(a, num_layers=2, seed=1)
    make_model(b, num_layers=2, seed=2)
    recipe = {
        "merge_method": "linear",
        "models": [
            {"model": str(a), "parameters": {"weight": 0.25}},
            {"model": str(b), "parameters": {"weight": 0.75}},
        ],
        "dtype": "float32",
    }
    builder = DiskCandidateBuilder()
    assert isinstance(builder, CandidateBuilder)
    cand = builder.build(recipe, tmp_path / "work")
    assert isinstance(cand, Candidate) and cand.path is not None
    on_disk = load_file(next(cand.path.glob("*.safetensors")))
    state = cand.model.state_dict()
    for k, v in on_disk.items():
        assert torch.equal(state[k], v), k
    ta, tb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    key = "model.layers.0.mlp.up_proj.weight"
    assert torch.allclose(on_disk[key], 0.25 * ta[key] + 0.75 * tb[key], atol=1e-6)
    assert cand.tokenizer("apples")["input_ids"]
    builder.release(cand)
    assert cand.model is None


def test_bad_recipe_raises_before_writing(tmp_path):
    from mergekit_evo.methods import RecipeError

    a = tmp_path / "a"
    make_model(a, num_layers=2, seed=1)
    bad = {
        "merge_method": "dfs",
        "models": [{"model": str(a)}],
        "parameters": {"repeats": 1, "indicators": [1.0]},  # needs T = 2 values
    }
    with pytest.raises(RecipeError):
        DiskCandidateBuilder().build(bad, tmp_path / "work")
    assert not (tmp_path / "work" / "model").exists()
