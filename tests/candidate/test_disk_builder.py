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


def test_ps_dfs_builds_at_one_path_are_not_stale_and_leave_no_loaders(tmp_path):
    from mergekit.io.tasks import LoaderCache

    base, m1, m2 = tmp_path / "base", tmp_path / "m1", tmp_path / "m2"
    for i, p in enumerate((base, m1, m2)):
        make_model(p, num_layers=2, seed=10 + i)

    def recipe(w: float) -> dict:
        return {
            "merge_method": "ps_dfs",
            "base_model": str(base),
            "models": [{"model": str(m1), "parameters": {"weight": w}}],
            "parameters": {
                "ps_method": "task_arithmetic",
                "dfs_models": ["ps", str(m2)],
                "repeats": 1,
                "indicators": [1.0, 1.0, -1.0, -1.0],
            },
            "dtype": "float32",
        }

    builder = DiskCandidateBuilder()
    work = tmp_path / "work"
    key = "model.layers.0.mlp.up_proj.weight"
    first = load_file(next(builder.merge(recipe(0.2), work / "model").glob("*.safetensors")))
    second = load_file(next(builder.merge(recipe(0.9), work / "model").glob("*.safetensors")))
    tb, t1 = load_file(base / "model.safetensors"), load_file(m1 / "model.safetensors")
    for out, w in ((first, 0.2), (second, 0.9)):
        assert torch.allclose(out[key], tb[key] + w * (t1[key] - tb[key]), atol=1e-6)
    assert not [r for r in LoaderCache().loaders if str(r.model.path).startswith(str(work))]
