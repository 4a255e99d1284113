"""The README's example recipes run on the committed zoo and give models that generate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import transformers
from mergekit.options import MergeOptions

from mergekit_evo.methods import merge_recipe

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name,layers", [("dfs", 10), ("ps_dfs", 9)])
def test_example_recipe_merges_and_generates(tmp_path, monkeypatch, name, layers):
    monkeypatch.chdir(ROOT)  # MergeKit resolves model paths against the working directory
    out = merge_recipe(
        ROOT / "examples" / f"{name}.yml", tmp_path / name, MergeOptions(random_seed=0, quiet=True)
    )
    model = transformers.AutoModelForCausalLM.from_pretrained(str(out))
    tok = transformers.AutoTokenizer.from_pretrained(str(out))
    assert model.config.num_hidden_layers == layers
    ids = tok("Q: Tom has 3 apples .", return_tensors="pt").input_ids
    with torch.no_grad():
        gen = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert gen.shape[1] == ids.shape[1] + 4
    assert os.path.exists(out / "mergekit_config.yml")
