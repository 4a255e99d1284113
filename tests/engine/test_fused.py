"""Fused q/k/v and gate/up: same tokens as unfused decoding, and never stale after merges (CPU).

The Triton decode attention runs here only in Triton's interpreter (``TRITON_INTERPRET=1``,
float32: the interpreter's bfloat16 ``tl.dot`` is wrong), when Triton is installed; the GPU
tests run it compiled.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mergekit_evo.engine.decoder import GreedyDecoder
from mergekit_evo.engine.fused import fuse_layer, fuse_model
from mergekit_evo.engine.stack import LayerStack
from tests.engine.test_decoder import _hf_greedy, _model, _prompts

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_fused_decode_equals_unfused(arch: str) -> None:
    model = _model(arch, layers=3)
    prompts = _prompts(4, 6, 5)
    plain = GreedyDecoder(LayerStack.from_model(model), max_batch=8, fuse=False)
    want = plain.generate(prompts, 10, lambda r, t: False)
    fused = GreedyDecoder(LayerStack.from_model(model), max_batch=8, fuse=True, attention="sdpa")
    assert fused._fused is not None
    assert fused.generate(prompts, 10, lambda r, t: False) == want


def test_fusing_aliases_the_parameters_and_keeps_the_model() -> None:
    model = _model("qwen2", layers=2)
    ids = torch.randint(1, 97, (2, 9))
    with torch.no_grad():
        before = model(ids).logits
    assert fuse_model(model) == 2
    layer = model.model.layers[0]
    t = fuse_layer(layer)
    assert t is not None and t.intact() and t.bqkv is not None
    attn = layer.self_attn
    assert attn.q_proj.weight.data_ptr() == t.wqkv.data_ptr()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, before, rtol=0, atol=0)
        attn.k_proj.weight.add_(1.0)  # an in-place write is a write of the fused matrix
    n_q = t.n_q * t.head_dim
    torch.testing.assert_close(t.wqkv[n_q : n_q + attn.k_proj.out_features], attn.k_proj.weight)


def test_a_moved_parameter_is_fused_again_and_the_graphs_dropped() -> None:
    model = _model("llama", layers=2)
    stack = LayerStack.from_model(model)
    dec = GreedyDecoder(stack, max_batch=4, fuse=True, attention="sdpa")
    prompts = _prompts(5, 3, 4)
    dec.generate(prompts, 4, lambda r, t: False)
    layer = model.model.layers[1]
    with torch.no_grad():
        layer.mlp.up_proj.weight.data = layer.mlp.up_proj.weight.data.clone() * 0.5
    assert not dec._fused.tensors[1].intact()
    want = _hf_greedy(model, prompts, 6)
    assert dec.generate(prompts, 6, lambda r, t: False) == want
    assert dec._fused.tensors[1].intact()
    up = layer.mlp.up_proj.weight
    torch.testing.assert_close(dec._fused.tensors[1].wgu[-up.shape[0] :], up)


def test_in_place_merges_reach_the_fused_decoder(tmp_path: Path) -> None:
    """One decoder over the working model: each merge's tokens are that candidate's."""
    from mergekit_evo.candidate.disk import DiskCandidateBuilder
    from mergekit_evo.candidate.resident import ResidentCandidateBuilder
    from tests.candidate.test_resident_builder import _ps, build_sources

    src = build_sources(tmp_path / "src")
    res = ResidentCandidateBuilder(device="cpu", dtype="float32")
    disk = DiskCandidateBuilder(dtype="float32")
    prompts = _prompts(6, 4, 6)
    dec = None
    for method, params in (("ties", {}), ("task_arithmetic", {"lambda": 1.7})):
        recipe = _ps(method, src, **params)
        model = res.build(recipe, tmp_path).model
        if dec is None:
            dec = GreedyDecoder(LayerStack.from_model(model), max_batch=8, fuse=True)
        fused = dec._fused.tensors[0]
        ref = disk.build(recipe, tmp_path / method).model
        attn = ref.model.layers[0].self_attn
        cat = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        torch.testing.assert_close(fused.wqkv, cat, rtol=0, atol=0)
        got = dec.generate(prompts, 8, lambda r, t: False)
        assert got == _hf_greedy(ref, prompts, 8), method


_TRITON_SCRIPT = r"""
import math, torch
from mergekit_evo.engine import attention as A
from mergekit_evo.engine.decoder import GreedyDecoder
from mergekit_evo.engine.stack import LayerStack
from tests.engine.test_decoder import _hf_greedy, _model, _prompts

g = torch.Generator().manual_seed(0)
b, hq, hkv, d, slots = 4, 6, 2, 16, 2 * A.SPLIT + 40
pos = torch.tensor([0, 17, A.SPLIT, slots - 1])
q = torch.randn(b, hq, d, generator=g)
kn, vn = torch.randn(b, hkv, d, generator=g), torch.randn(b, hkv, d, generator=g)
kc, vc = torch.randn(b, hkv, slots, d, generator=g), torch.randn(b, hkv, slots, d, generator=g)
k2, v2 = kc.clone(), vc.clone()
want = A.reference_attention(q, kn, vn, kc, vc, pos, 1 / math.sqrt(d))
got = A.decode_attention(q, kn, vn, k2, v2, pos, 1 / math.sqrt(d))
torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
assert torch.equal(kc, k2) and torch.equal(vc, v2)
assert A.usable(torch.device("cpu"), torch.float32, hq, hkv, d)

model = _model("qwen2", layers=2)
prompts = _prompts(3, 5, 6)
want = _hf_greedy(model, prompts, 10)
dec = GreedyDecoder(LayerStack.from_model(model), max_batch=8, check_every=3, fuse=True,
                    attention="triton", min_shared_prefix=2)
assert dec.attention == "triton"
got = dec.generate(prompts, 10, lambda r, t: r == 1 and len(t) >= 3)
assert all(g == w[: len(g)] for g, w in zip(got, want)) and len(got[1]) < 10 == len(got[0])
print("TRITON-OK")
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton not installed")
def test_triton_decode_attention_in_the_interpreter() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", _TRITON_SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0 and "TRITON-OK" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton not installed")
@pytest.mark.parametrize(("dtype", "group", "dim"), [("bf16", 7, 64), ("fp32", 4, 128)])
def test_triton_kernels_compile_for_hopper(dtype: str, group: int, dim: int) -> None:
    """Both kernels build to sm_90 machine code here (Triton ships ptxas; no GPU needed)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from mergekit_evo.engine import attention as A

    def build(fn, consts: dict, pointers: dict) -> object:
        sig = {n: "constexpr" if n in consts else pointers.get(n, "i32") for n in fn.arg_names}
        src = ASTSource(fn=fn, signature=sig, constexprs=consts)
        return triton.compile(src, target=GPUTarget("cuda", 90, 32))

    t = f"*{dtype}"
    split = build(
        A._split_kernel,
        {"G": group, "GP": 16, "D": dim, "BLOCK": A.BLOCK_N, "SPLIT_N": A.SPLIT,
         "IEEE": dtype == "fp32"},
        {"Q": t, "KN": t, "VN": t, "K": t, "V": t, "POS": "*i64", "MO": "*fp32",
         "LO": "*fp32", "AO": "*fp32", "scale": "fp32"},
    )  # fmt: skip
    build(
        A._combine_kernel,
        {"G": group, "GP": 16, "D": dim, "SPLIT_N": A.SPLIT, "NSPLIT": 6},
        {"MO": "*fp32", "LO": "*fp32", "AO": "*fp32", "POS": "*i64", "OUT": t},
    )
    assert ("mma" in split.asm["ptx"]) == (dtype == "bf16")  # tensor cores for bf16


def _entries(fn) -> int:
    """Dynamo's compiled entries for a ``torch.compile``'d function's code object."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    return len(_debug_get_cache_entry_list(fn._torchdynamo_orig_callable.__code__))


def test_compiled_variants_never_reach_the_recompile_limit() -> None:
    """The H200 run's failure, on CPU (Dynamo's guards do not depend on the backend, so the
    ``eager`` backend keeps it fast): one process decodes three layer structures, in float32
    and bfloat16, prefills of many lengths, a shared prefix and a batch compacted to one row.
    Together they need more than ``recompile_limit`` entries of ``pre_attention`` (what failed
    there); each variant's own code object needs one, two where duck sizing first equated a
    batch or length with a head count."""
    import torch._dynamo.config as dynamo_config

    from mergekit_evo.engine.fused import FusedLayers

    FusedLayers._compiled.clear()
    for arch, dtype in (("llama", torch.float32), ("qwen2", torch.bfloat16),
                        ("qwen3", torch.float32)):  # fmt: skip
        model = _model(arch, layers=2).to(dtype)
        plain = GreedyDecoder(LayerStack.from_model(model), max_batch=8, fuse=False)
        dec = GreedyDecoder(LayerStack.from_model(model), max_batch=8, check_every=2,
                            min_shared_prefix=2, fuse=True, attention="sdpa",
                            compile="eager")  # fmt: skip
        assert dec._fused is not None and dec._fused.compile
        for n, shared, seed in ((3, 0, 1), (5, 9, 2), (4, 30, 4)):
            prompts = _prompts(seed, n, shared)  # prefill lengths 1 to 38
            got = dec.generate(prompts, 6, lambda r, t: r > 0 and len(t) >= 2)  # row 0 alone
            if dtype == torch.float32:  # rows stop at a check: compare their tokens
                want = plain.generate(prompts, 6, lambda r, t: False)
                assert all(g == w[: len(g)] for g, w in zip(got, want, strict=True))
        assert dec.stats.compactions > 0 and dec.stats.shared_prefix_tokens > 0
    counts = {key: _entries(fn) for key, fn in FusedLayers._compiled.items()}
    pre = sum(n for key, n in counts.items() if key[0] == "pre_attention")
    assert pre > dynamo_config.recompile_limit  # one shared code object fails here
    assert max(counts.values()) <= 2, counts
    prefill = [n for key, n in counts.items() if key[2][-2:] == (False, False)]
    assert prefill == [1] * 6  # pre and post of three variants: one entry for every length


@pytest.mark.slow
def test_inductor_prefill_is_compiled_once_for_every_length() -> None:
    """The real compiler on CPU: prefills of lengths 2 to 40 reuse one compiled graph and give
    the uncompiled functions' tokens."""
    from mergekit_evo.engine.fused import FusedLayers

    FusedLayers._compiled.clear()
    model = _model("qwen2", layers=2)
    plain = GreedyDecoder(LayerStack.from_model(model), max_batch=4, fuse=True, compile=False)
    dec = GreedyDecoder(LayerStack.from_model(model), max_batch=4, fuse=True, compile=True)
    for seed, shared in ((1, 0), (2, 12), (3, 33)):
        prompts = _prompts(seed, 4, shared)
        assert dec.generate(prompts, 4, lambda r, t: False) == plain.generate(
            prompts, 4, lambda r, t: False
        )
    counts = {key[:2] + key[2][-2:]: _entries(fn) for key, fn in FusedLayers._compiled.items()}
    assert counts == {
        ("pre_attention", "inductor", False, False): 1,
        ("post_attention", "inductor", False, False): 1,
        ("pre_attention", "inductor", False, True): 1,
        ("post_attention", "inductor", False, True): 1,
    }
