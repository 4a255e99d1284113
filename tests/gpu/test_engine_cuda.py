"""On a CUDA device: CUDA-graph decoding, in-place merges and a CLI search (``-m gpu``).

Covers what only a GPU runs: the compiled fused layer functions, the Triton decode attention
compiled (CPU tests run it in Triton's interpreter, float32 only), the batched merges with
MergeKit's own CUDA sort order, and random masks drawn on the device.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
ROOT = Path(__file__).resolve().parents[2]


def test_graph_decoding_equals_hf_generate_in_float32() -> None:
    from mergekit_evo.engine import GreedyDecoder, LayerStack
    from tests.engine.test_decoder import _hf_greedy, _model, _prompts

    model = _model("qwen2", layers=4).cuda()
    prompts = _prompts(3, 12, 70)
    want = _hf_greedy(model, prompts, 24)
    dec = GreedyDecoder(LayerStack.from_model(model), max_batch=16, check_every=4)
    assert dec._fused is not None  # head_dim 8: SDPA (the Triton kernel needs >= 16)
    got = dec.generate(prompts, 24, lambda r, t: r % 3 == 0 and len(t) >= 8)
    assert dec.stats.graph_captures >= 1 and dec.stats.shared_prefix_tokens > 0
    for r, toks in enumerate(got):
        assert toks == want[r][: len(toks)]


def test_in_place_ties_on_cuda_equals_mergekit(tmp_path: Path) -> None:
    from mergekit_evo.candidate.disk import DiskCandidateBuilder
    from mergekit_evo.candidate.resident import ResidentCandidateBuilder
    from tests.candidate.test_resident_builder import _ps, _state, build_sources

    recipe = _ps("ties", build_sources(tmp_path / "src"), normalize=True)
    disk = DiskCandidateBuilder(device="cuda", dtype="float32")
    ours = ResidentCandidateBuilder(device="cuda", dtype="float32")
    want = _state(disk.build(recipe, tmp_path).model)
    got = _state(ours.build(recipe, tmp_path).model)
    for k in want:
        torch.testing.assert_close(got[k].cpu(), want[k].cpu(), rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("arch", ["llama", "qwen3", "mistral"])
def test_fused_triton_decoding_equals_hf_generate_in_float32(arch: str) -> None:
    import transformers

    from mergekit_evo.engine import GreedyDecoder, LayerStack
    from tests.engine.test_decoder import _hf_greedy, _prompts
    from tests.tiny_models import _CONFIGS

    cfg = _CONFIGS[arch](
        vocab_size=97,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )  # head_dim 16: the smallest the Triton kernel takes
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)  # logits far from ties
    model = model.eval().cuda()
    prompts = _prompts(7, 9, 0) + _prompts(8, 4, 200)  # ragged: 1 to 208 tokens
    want = _hf_greedy(model, prompts, 20)
    dec = GreedyDecoder(LayerStack.from_model(model), max_batch=16, check_every=5)
    assert dec.attention == "triton"
    assert dec.generate(prompts, 20, lambda r, t: False) == want


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("hq", "hkv", "dim"), [(14, 2, 64), (32, 8, 128), (4, 4, 64)])
def test_triton_decode_attention_matches_sdpa(dtype, hq: int, hkv: int, dim: int) -> None:
    import math

    from mergekit_evo.engine import attention as A

    g = torch.Generator(device="cuda").manual_seed(hq + dim)
    b, slots = 9, 3 * A.SPLIT + 17
    pos = torch.tensor([0, 1, 63, 64, A.SPLIT - 1, A.SPLIT, 2 * A.SPLIT + 5, slots - 2, slots - 1])

    def rnd(*shape):
        return torch.randn(*shape, generator=g, device="cuda").to(dtype)

    q, kn, vn = rnd(b, hq, dim), rnd(b, hkv, dim), rnd(b, hkv, dim)
    kc, vc = rnd(b, hkv, slots, dim), rnd(b, hkv, slots, dim)
    k2, v2 = kc.clone(), vc.clone()
    scale = 1 / math.sqrt(dim)
    want = A.reference_attention(q, kn, vn, kc, vc, pos.cuda(), scale)
    got = A.decode_attention(q, kn, vn, k2, v2, pos.cuda(), scale)
    err = ((got.float() - want.float()).norm() / want.float().norm()).item()
    assert err < (1e-5 if dtype == torch.float32 else 1e-2), err
    assert torch.equal(kc, k2) and torch.equal(vc, v2)
    assert A.usable(torch.device("cuda"), dtype, hq, hkv, dim)


@pytest.mark.parametrize(
    ("method", "params", "dtype"),
    [
        ("ties", {}, "bfloat16"),
        ("ties", {"rescale": True, "normalize": False}, "float32"),
        ("breadcrumbs_ties", {}, "bfloat16"),
        ("breadcrumbs", {"lambda": 0.9}, "float32"),
        ("task_arithmetic", {"lambda": 0.8}, "bfloat16"),
        ("linear", {"normalize": True}, "bfloat16"),
    ],
)
def test_batched_merges_on_cuda_equal_mergekit(tmp_path: Path, method, params, dtype) -> None:
    from mergekit_evo.candidate.disk import DiskCandidateBuilder
    from mergekit_evo.candidate.resident import ResidentCandidateBuilder
    from tests.candidate.test_resident_builder import _ps, _state, build_sources

    recipe = _ps(method, build_sources(tmp_path / "src"), **params)
    recipe["dtype"] = dtype
    if method == "linear":
        recipe.pop("base_model")
    want = _state(
        DiskCandidateBuilder(device="cuda", dtype="float32").build(recipe, tmp_path).model
    )
    ours = ResidentCandidateBuilder(device="cuda", dtype="float32")
    got = _state(ours.build(recipe, tmp_path).model)
    assert ours.last_merge_path == "batched"
    for k in want:
        torch.testing.assert_close(got[k].cpu(), want[k].cpu(), rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("method", ["dare_ties", "dare_linear", "della"])
def test_random_masks_on_cuda_keep_mergekit_rates(method: str) -> None:
    from tests.candidate.test_batched_merge import _dare_rows, _mergekit, _ours

    dens = [0.2, 0.5, 0.8]
    base, srcs, per = _dare_rows(method, dens, len(dens), shape=(256, 256))
    base, srcs = base.cuda(), [s.cuda() for s in srcs]
    torch.manual_seed(0)
    got = _ours(method, base, srcs, [{}] * len(dens), per)
    n = base[0].numel()
    for r, d in enumerate(dens):
        want = _mergekit(method, base[r], [srcs[0][r]], {}, [per[0][r]])
        delta = (srcs[0][r] - base[r]).abs().sum()
        for out in (got[r], want):
            kept = ((out - base[r]) != 0).float().mean().item()
            assert abs(kept - d) < 6 * (d * (1 - d) / n) ** 0.5 + 1e-3, (method, d, kept)
            assert abs(((out - base[r]).abs().sum() / delta).item() - 1) < 1e-3


def test_in_place_merges_reach_the_graph_decoder_on_cuda(tmp_path: Path) -> None:
    from mergekit_evo.candidate.disk import DiskCandidateBuilder
    from mergekit_evo.candidate.resident import ResidentCandidateBuilder
    from mergekit_evo.engine import GreedyDecoder, LayerStack
    from tests.candidate.test_resident_builder import _ps, build_sources
    from tests.engine.test_decoder import _hf_greedy, _prompts

    src = build_sources(tmp_path / "src")
    res = ResidentCandidateBuilder(device="cuda", dtype="float32")
    prompts = _prompts(6, 5, 12)
    dec = None
    for method, params in (("ties", {}), ("task_arithmetic", {"lambda": 1.7}), ("ties", {})):
        recipe = _ps(method, src, **params)
        model = res.build(recipe, tmp_path).model
        dec = dec or GreedyDecoder(LayerStack.from_model(model), max_batch=8, check_every=4)
        ref = DiskCandidateBuilder(device="cuda", dtype="float32").build(recipe, tmp_path / "d")
        assert dec.generate(prompts, 12, lambda r, t: False) == _hf_greedy(ref.model, prompts, 12)
    assert dec.stats.graph_captures == 1  # one capture served every candidate


def test_cli_search_on_cuda_runs_clean(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", "from mergekit_evo.cli import main; main()", "search",
           str(ROOT / "recipes" / "zoo-ps.yml"), "--out", str(out), "--device", "cuda",
           "--max-trials", "6"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    ps = metrics["trials"]["ps"]
    # zoo-ps.yml scores in rungs (issue 17): a hopeless candidate is PRUNED, not failed
    assert ps["fail"] == 0 and ps["running"] == 0, ps
    assert ps["complete"] + ps["pruned"] == 6 and ps["complete"] >= 1, ps
    assert (out / "best.yml").exists()
