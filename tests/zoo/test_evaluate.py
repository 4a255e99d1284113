"""mergekit_evo/zoo/evaluate.py's task-vector breakdown and sanity text, on hand-made tensors."""

from __future__ import annotations

import torch

from mergekit_evo.zoo.evaluate import format_table, task_vector_parts


def _sd(emb: float, low: float, high: float) -> dict[str, torch.Tensor]:
    return {
        "model.embed_tokens.weight": torch.full((4, 2), emb),
        "model.layers.3.mlp.up_proj.weight": torch.full((2, 2), low),
        "model.layers.12.mlp.up_proj.weight": torch.full((2, 2), high),
        "model.norm.weight": torch.ones(2),
    }


def test_task_vector_parts_says_where_each_vector_sits() -> None:
    base = _sd(1.0, 1.0, 1.0)
    a = _sd(1.0, 1.5, 1.1)  # layers only (MATH's shape)
    b = _sd(2.0, 0.5, 1.0)  # embeddings and layers 0-9 (LANG's with layers 10-29 frozen)
    parts = task_vector_parts(base, a, b)
    assert list(parts) == ["embeddings", "layers 0-9", "layers 10-19", "other"]
    assert parts["embeddings"]["rel_norm_a"] == 0.0 and parts["embeddings"]["rel_norm_b"] == 1.0
    assert abs(parts["layers 0-9"]["rel_norm_a"] - 0.5) < 1e-6
    assert abs(parts["layers 0-9"]["cosine"] + 1.0) < 1e-6  # opposite changes: interference
    assert parts["layers 10-19"]["rel_norm_b"] == 0.0 and parts["other"]["rel_norm_a"] == 0.0


def test_format_table_shows_parts_and_merge_samples() -> None:
    base = _sd(1.0, 1.0, 1.0)
    result = {
        "accuracy": {"lang_heldout": {"base": 0.0, "math": 0.0, "lang": 0.78, "m": 0.0}},
        "sources": ["math", "lang"],
        "task_vectors": {"rel_norm_a": 0.005, "rel_norm_b": 0.04, "cosine": 0.001},
        "task_vector_parts": task_vector_parts(base, _sd(1, 1.5, 1.1), _sd(2, 0.5, 1)),
        "merge_samples": {"model": "m", "lang_heldout": [{"output": " 8 + 3 = 11", "gold": "x"}]},
    }
    text = format_table(result)
    assert "| lang_heldout | 0.0 | 0.0 | 78.0 | 0.0 |" in text
    assert "| layers 0-9 | 0.5000 | 0.5000 | -1.000 |" in text
    assert "lang_heldout (m): '8 + 3 = 11'  gold 'x'" in text
