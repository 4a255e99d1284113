"""ps_dfs equals running its PS stage with MergeKit, then dfs over the stage's output."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import make_model

from mergekit_evo.methods import merge_recipe


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """A base and two fine-tunes of it (same shapes), and an unrelated-seed third model."""
    root = tmp_path_factory.mktemp("family")
    paths = {}
    for name, seed in [("base", 0), ("math", 1), ("lang", 2)]:
        paths[name] = root / name
        make_model(paths[name], num_layers=2, seed=seed, rms_norm_eps=1e-12)
    return paths


def _tensors(path):
    return load_file(str(path / "model.safetensors"))


def _ps(family, weights=(0.7, 0.6)):
    return {
        "merge_method": "task_arithmetic",
        "base_model": str(family["base"]),
        "models": [
            {"model": str(family["math"]), "parameters": {"weight": weights[0]}},
            {"model": str(family["lang"]), "parameters": {"weight": weights[1]}},
        ],
        "dtype": "float32",
    }


DFS = {"repeats": 2, "indicators": [1, 1, -1, 1, 1, -1, 1, 1], "scales": [[1.0, 1.3], [0.7, 1.1]]}


def test_paper_form_equals_two_step_merge(family, tmp_path):
    ps_dir = merge_recipe(_ps(family), tmp_path / "ps")
    two_step = merge_recipe(
        {
            "merge_method": "dfs",
            "models": [{"model": str(ps_dir)}, {"model": str(family["lang"])}],
            "parameters": DFS,
            "dtype": "float32",
        },
        tmp_path / "two_step",
    )
    one_doc = {**_ps(family), "merge_method": "ps_dfs"}
    one_doc["parameters"] = {
        "ps_method": "task_arithmetic",
        "dfs_models": ["ps", str(family["lang"])],
        **DFS,
    }
    merged = merge_recipe(one_doc, tmp_path / "one_doc")
    got, want = _tensors(merged), _tensors(two_step)
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), name
    # the PS stage's scratch folders are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one_doc", "ps", "two_step"]


def test_top_k_form_feeds_several_ps_stages(family, tmp_path):
    first = merge_recipe(_ps(family, (0.7, 0.6)), tmp_path / "c0")
    second = merge_recipe(_ps(family, (0.2, 1.1)), tmp_path / "c1")
    two_step = merge_recipe(
        {
            "merge_method": "dfs",
            "models": [{"model": str(first)}, {"model": str(second)}],
            "parameters": DFS,
            "dtype": "float32",
        },
        tmp_path / "two_step",
    )
    stage = _ps(family)
    doc = {
        "merge_method": "ps_dfs",
        "base_model": str(family["base"]),
        "modules": {
            "c0": {"models": stage["models"]},
            "c1": {
                "models": [
                    {"model": str(family["math"]), "parameters": {"weight": 0.2}},
                    {"model": str(family["lang"]), "parameters": {"weight": 1.1}},
                ]
            },
        },
        "parameters": {"ps_method": "task_arithmetic", "dfs_models": ["c0", "c1"], **DFS},
        "dtype": "float32",
    }
    got, want = _tensors(merge_recipe(doc, tmp_path / "one_doc")), _tensors(two_step)
    for name in want:
        assert torch.equal(got[name], want[name]), name


def test_repeated_ps_dfs_in_one_process_reads_fresh_stage_outputs(family, tmp_path):
    """MergeKit caches tensor loaders per path for the whole process: a second ps_dfs with
    other PS weights, written to the same output path, must not reuse the first stage's."""
    from mergekit.io.tasks import LoaderCache

    def doc(weights):
        d = {**_ps(family, weights), "merge_method": "ps_dfs"}
        d["parameters"] = {
            "ps_method": "task_arithmetic",
            "dfs_models": ["ps"],
            "repeats": 1,
            "indicators": [1, 1],
        }
        return d

    first = _tensors(merge_recipe(doc((0.7, 0.6)), tmp_path / "out"))
    second = _tensors(merge_recipe(doc((0.1, 1.3)), tmp_path / "out"))
    plain = _tensors(merge_recipe(_ps(family, (0.1, 1.3)), tmp_path / "plain"))
    name = "model.layers.0.mlp.down_proj.weight"
    assert not torch.equal(first[name], second[name])
    assert torch.equal(second[name], plain[name])
    assert not [r for r in LoaderCache().loaders if "ps-stages" in r.model.path]
