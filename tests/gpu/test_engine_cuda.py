"""On a CUDA device: CUDA-graph decoding, in-place merges and a CLI search (``-m gpu``)."""

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


def test_cli_search_on_cuda_runs_clean(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", "from mergekit_evo.cli import main; main()", "search",
           str(ROOT / "recipes" / "zoo-ps.yml"), "--out", str(out), "--device", "cuda",
           "--max-trials", "6"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trials"]["ps"]["fail"] == 0 and metrics["trials"]["ps"]["complete"] == 6
    assert (out / "best.yml").exists()
