"""The materialized DFS model computes exactly what routing through the sources computes."""

from __future__ import annotations

import random

import pytest
import torch
import transformers

from mergekit_evo.methods import merge_recipe
from mergekit_evo.methods.dfs import DFSParameters, plan_path

from .routing import logits, routed_model

ARCHS = ["llama", "mistral", "qwen2", "qwen3"]
COUNTS = [3, 2]  # layers of A and B in the tiny pair


def _load(path):
    return transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)


def _input_ids(vocab: int = 160) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(4, vocab, (2, 11), generator=gen)


def _random_recipe(seed: int, repeats: int = 2, compact: bool = False) -> dict:
    rng = random.Random(seed)
    total = sum(COUNTS)
    indicators = [rng.uniform(-1, 1) for _ in range(total * repeats)]
    indicators[0] = 1.0  # never empty
    size = len(COUNTS) if compact else total
    scales = [[rng.uniform(0.5, 2.0) for _ in range(size)] for _ in range(size)]
    return {"repeats": repeats, "indicators": indicators, "scales": scales}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("seed,compact", [(0, False), (1, True)])
def test_merged_logits_equal_routed_reference(tiny_pair, tmp_path, arch, seed, compact):
    a, b = tiny_pair(arch)
    params = _random_recipe(seed, compact=compact)
    recipe = {
        "merge_method": "dfs",
        "models": [{"model": str(a)}, {"model": str(b)}],
        "parameters": params,
        "dtype": "float32",
    }
    out = merge_recipe(recipe, tmp_path / "merged")

    path = plan_path(COUNTS, DFSParameters(**params))
    assert len(path) > 1 and any(s != 1.0 for s in path.hop_scales)
    merged = _load(out)
    assert merged.config.num_hidden_layers == len(path)
    ids = _input_ids()
    expected = logits(routed_model([_load(a), _load(b)], path), ids)
    got = logits(merged, ids)
    rel = (got - expected).abs().max() / expected.abs().max()
    assert rel < 1e-5, f"relative error {rel:.2e}"
    # and W matters: the unscaled path gives different logits
    unscaled = logits(
        routed_model([_load(a), _load(b)], path.__class__(path.layers, (1.0,) * len(path))), ids
    )
    assert (unscaled - expected).abs().max() / expected.abs().max() > 1e-2


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_head_model_gives_the_final_norm_and_head(tiny_pair, tmp_path, arch):
    """``head_model: 1``: B's final norm and lm_head after the path (a frankenmerge whose last
    slice is B's); model A's embeddings still; W folded as before."""
    a, b = tiny_pair(arch)
    params = {**_random_recipe(2, compact=True), "head_model": 1}
    params["indicators"][-1] = -1.0  # the path need not end on B for B's head to apply
    recipe = {
        "merge_method": "dfs",
        "models": [{"model": str(a)}, {"model": str(b)}],
        "parameters": params,
        "dtype": "float32",
    }
    merged = _load(merge_recipe(recipe, tmp_path / "merged"))
    A, B = _load(a), _load(b)
    assert torch.equal(merged.lm_head.weight, B.lm_head.weight)
    assert torch.equal(merged.model.norm.weight, B.model.norm.weight)
    assert torch.equal(merged.model.embed_tokens.weight, A.model.embed_tokens.weight)
    path = plan_path(COUNTS, DFSParameters(**params))
    ids = _input_ids()
    expected = logits(routed_model([A, B], path, head=1), ids)
    rel = (logits(merged, ids) - expected).abs().max() / expected.abs().max()
    assert rel < 1e-5, f"relative error {rel:.2e}"
    with_a = logits(routed_model([A, B], path, head=0), ids)
    assert (with_a - expected).abs().max() / expected.abs().max() > 1e-3
    bad = {**recipe, "parameters": {**params, "head_model": 2}}
    with pytest.raises(ValueError, match="head_model"):
        merge_recipe(bad, tmp_path / "bad")


@pytest.mark.parametrize("arch", ARCHS)
def test_model_a_path_with_unit_scales_reproduces_model_a(tiny_pair, tmp_path, arch):
    a, b = tiny_pair(arch)
    total, repeats = sum(COUNTS), 2
    indicators = [-1.0] * (total * repeats)
    indicators[0:3] = [1.0, 1.0, 1.0]  # A's layers, first repetition
    recipe = {
        "merge_method": "dfs",
        "models": [{"model": str(a)}, {"model": str(b)}],
        "parameters": {"repeats": repeats, "indicators": indicators, "scales": [[1, 7], [7, 1]]},
        "dtype": "float32",
    }
    out = merge_recipe(recipe, tmp_path / "merged")
    ids = _input_ids()
    torch.testing.assert_close(logits(_load(out), ids), logits(_load(a), ids), rtol=0, atol=0)


def test_pin_ends_puts_model_a_first_and_last_layers_at_the_ends():
    params = DFSParameters(repeats=1, indicators=[-1, 1, -1, 1, 1], pin_ends=True)
    path = plan_path(COUNTS, params)
    steps = [(s.model, s.layer) for s in path.layers]
    assert steps == [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2)]
    # already pinned: nothing is added
    full = plan_path(COUNTS, DFSParameters(repeats=1, indicators=[1, 1, 1, -1, -1], pin_ends=True))
    assert [(s.model, s.layer) for s in full.layers] == [(0, 0), (0, 1), (0, 2)]


def test_layer_may_follow_itself_and_its_self_scale_applies():
    w = [[2.0, 1.0], [1.0, 1.0]]
    path = plan_path([1, 1], DFSParameters(repeats=2, indicators=[1, -1, 1, -1], scales=w))
    assert [(s.model, s.layer) for s in path.layers] == [(0, 0), (0, 0)]
    assert path.hop_scales == (1.0, 2.0)
    assert path.residual_factors == (1.0, 0.5)
