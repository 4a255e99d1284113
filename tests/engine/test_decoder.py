"""The engine's greedy decoder equals Hugging Face ``generate`` (float32, CPU)."""

from __future__ import annotations

import pytest
import torch
import transformers

from mergekit_evo.engine.decoder import GreedyDecoder
from mergekit_evo.engine.stack import LayerStack, UnsupportedModel
from tests.tiny_models import _CONFIGS


def _model(arch: str, seed: int = 0, layers: int = 3, **kw) -> transformers.PreTrainedModel:
    cfg = _CONFIGS[arch](
        vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=False, **kw,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():  # larger weights: logits far from ties
            p.mul_(3.0)
    return model.eval()


def _prompts(seed: int, n: int, shared: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    prefix = torch.randint(1, 97, (shared,), generator=g).tolist()
    lengths = torch.randint(1, 9, (n,), generator=g).tolist()
    return [prefix + torch.randint(1, 97, (k,), generator=g).tolist() for k in lengths]


def _hf_greedy(model, prompts: list[list[int]], max_new: int) -> list[list[int]]:
    width = max(map(len, prompts))
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    out = model.generate(
        input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
        max_new_tokens=max_new, do_sample=False, pad_token_id=0, eos_token_id=None,
    )  # fmt: skip
    return out[:, width:].tolist()


@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen2", "qwen3"])
@pytest.mark.parametrize("shared", [0, 7])
@pytest.mark.parametrize("fuse", [False, True])
def test_generate_equals_hf_generate(arch: str, shared: int, fuse: bool) -> None:
    model = _model(arch)
    prompts = _prompts(1, 5, shared)
    want = _hf_greedy(model, prompts, 12)
    dec = GreedyDecoder(
        LayerStack.from_model(model), max_batch=4, check_every=3, min_shared_prefix=2, fuse=fuse
    )
    assert (dec._fused is not None) == fuse  # the fused functions, uncompiled on CPU
    got = dec.generate(prompts, 12, lambda r, toks: False)
    assert got == want
    if shared:
        assert dec.stats.shared_prefix_tokens > 0


def test_rows_retire_and_the_rest_goes_on() -> None:
    model = _model("llama")
    prompts = _prompts(2, 8, 4)
    want = _hf_greedy(model, prompts, 16)
    dec = GreedyDecoder(
        LayerStack.from_model(model), max_batch=8, check_every=2, min_shared_prefix=2
    )
    # rows 0-5 may stop after 4 tokens: the batch is compacted, rows 6-7 decode to the end
    got = dec.generate(prompts, 16, lambda r, toks: r < 6 and len(toks) >= 4)
    assert dec.stats.compactions >= 1
    for r in range(8):
        assert got[r] == want[r][: len(got[r])]
        assert len(got[r]) == (16 if r >= 6 else 4)


def test_logits_equal_hf_forward() -> None:
    model = _model("qwen2")
    ids = torch.randint(1, 97, (2, 11))
    dec = GreedyDecoder(LayerStack.from_model(model), max_batch=2)
    torch.testing.assert_close(dec.logits(ids), model(ids).logits, rtol=1e-4, atol=1e-4)


def test_routed_stack_scales_hops_like_the_reference() -> None:
    from mergekit_evo.methods.dfs import DataFlowPath, LayerRef
    from tests.methods.routing import logits as ref_logits
    from tests.methods.routing import routed_model

    a, b = _model("llama", seed=0), _model("llama", seed=1)
    path = [(0, 0), (1, 1), (1, 1), (0, 2)]
    scales = [1.0, 0.7, 1.3, 0.9]
    stack = LayerStack.routed([a, b], path, scales)
    ids = torch.randint(1, 97, (2, 9))
    ref = routed_model(
        [a, b],
        DataFlowPath(layers=tuple(LayerRef(m, i) for m, i in path), hop_scales=tuple(scales)),
    )
    got = GreedyDecoder(stack, max_batch=2).logits(ids)
    torch.testing.assert_close(got, ref_logits(ref, ids), rtol=1e-4, atol=1e-4)


def test_sliding_window_too_short_is_refused() -> None:
    model = _model("mistral", sliding_window=16)
    dec = GreedyDecoder(LayerStack.from_model(model), max_batch=2)
    with pytest.raises(UnsupportedModel, match="sliding window"):
        dec.generate([[1, 2, 3]], 20, lambda r, t: False)
