"""Unmodified MergeKit (``mergekit-yaml``) runs dfs and ps_dfs once the package is installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
import yaml

from mergekit_evo.methods.dfs import DFSParameters, plan_path

from .routing import logits, routed_model

# the console script installed beside this interpreter (the venv need not be activated)
_BESIDE = Path(sys.executable).parent / "mergekit-yaml"
MERGEKIT_YAML = str(_BESIDE) if _BESIDE.exists() else shutil.which("mergekit-yaml")


def _run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.skipif(MERGEKIT_YAML is None, reason="mergekit-yaml not on PATH")
def test_mergekit_yaml_writes_dfs_model_matching_routed_reference(tiny_pair, tmp_path):
    a, b = tiny_pair("llama")
    params = {
        "repeats": 3,
        "indicators": [1, 0, 1, 1, -1, 0, 1, 1, 1, 0, -1, -1, 1, 1, 1],
        "scales": [[1.0, 1.5], [0.8, 1.2]],
    }
    cfg = tmp_path / "dfs.yml"
    # relative model paths, as people write them
    shutil.copytree(a, tmp_path / "A")
    shutil.copytree(b, tmp_path / "B")
    doc = {"merge_method": "dfs", "models": [{"model": "A"}, {"model": "B"}], "parameters": params}
    cfg.write_text(yaml.safe_dump({**doc, "dtype": "float32"}))
    proc = _run(MERGEKIT_YAML, str(cfg), "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]

    merged = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "out"))
    sources = [transformers.AutoModelForCausalLM.from_pretrained(str(p)) for p in (a, b)]
    path = plan_path([3, 2], DFSParameters(**params))
    ids = torch.randint(4, 160, (1, 9), generator=torch.Generator().manual_seed(1))
    want = logits(routed_model(sources, path), ids)
    rel = (logits(merged, ids) - want).abs().max() / want.abs().max()
    assert rel < 1e-5
    assert (tmp_path / "out" / "tokenizer.json").exists()  # tokenizer copied from model A
    assert "merge_method: dfs" in (tmp_path / "out" / "mergekit_config.yml").read_text()


@pytest.mark.skipif(MERGEKIT_YAML is None, reason="mergekit-yaml not on PATH")
def test_mergekit_yaml_runs_ps_dfs(tiny_pair, tmp_path):
    a, b = tiny_pair("llama")
    doc = {
        "merge_method": "ps_dfs",
        "models": [{"model": str(a), "parameters": {"weight": 1.0}}],
        "parameters": {
            "ps_method": "linear",
            "dfs_models": ["ps", str(b)],
            "repeats": 1,
            "indicators": [1, 1, 1, 1, 1],
        },
        "dtype": "float32",
    }
    cfg = tmp_path / "ps_dfs.yml"
    cfg.write_text(yaml.safe_dump(doc))
    proc = _run(MERGEKIT_YAML, str(cfg), str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    merged = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "out"))
    assert merged.config.num_hidden_layers == 5


@pytest.mark.skipif(MERGEKIT_YAML is None, reason="mergekit-yaml not on PATH")
def test_mergekit_yaml_bad_recipe_writes_nothing(tiny_pair, tmp_path):
    a, b = tiny_pair("llama")
    doc = {
        "merge_method": "dfs",
        "models": [{"model": str(a)}, {"model": str(b)}],
        "parameters": {"repeats": 1, "indicators": [1, 1]},
    }
    cfg = tmp_path / "bad.yml"
    cfg.write_text(yaml.safe_dump(doc))
    proc = _run(MERGEKIT_YAML, str(cfg), str(tmp_path / "out"))
    assert proc.returncode != 0
    assert "parameters.indicators: got '2 values'; expected T = M * r = 5 * 1 = 5" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yml"]


def test_python_start_does_not_import_mergekit():
    code = (
        "import sys; print('mergekit' in sys.modules, "
        "any(type(f).__name__ == '_MergeKitFinder' for f in sys.meta_path))"
    )
    out = _run(sys.executable, "-c", code).stdout.split()
    assert out == ["False", "True"]


def test_registry_knows_the_methods_after_a_plain_import():
    code = (
        "from mergekit.merge_methods import registry; "
        "print(registry.get('dfs').spec.name, registry.get('ps_dfs').spec.name)"
    )
    proc = _run(sys.executable, "-c", code)
    assert proc.stdout.split() == ["dfs", "ps_dfs"], proc.stderr[-1000:]


def test_planner_refuses_dfs_per_tensor_with_a_clear_message():
    from mergekit.merge_methods import registry

    with pytest.raises(RuntimeError, match="planned as a whole model: run it with `mergekit-yaml`"):
        registry.get("dfs").validate_inputs(["a", "b"])
