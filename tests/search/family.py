"""A tiny model family for search tests: one random base and two fine-tune-like perturbations.

Merges of models derived from one base are meaningful (task vectors are small), which is the
regime PS and DFS merging is designed for.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import transformers
import yaml
from tiny_models import make_model


def make_family(root: Path, num_layers: int = 2, hidden: int = 32) -> dict[str, Path]:
    """``base``, ``math`` and ``lang`` folders under ``root`` (float32, same tokenizer)."""
    root.mkdir(parents=True, exist_ok=True)
    base = root / "base"
    make_model(base, num_layers=num_layers, hidden=hidden, seed=0)
    out = {"base": base}
    for i, name in enumerate(("math", "lang"), start=1):
        model = transformers.AutoModelForCausalLM.from_pretrained(base)
        gen = torch.Generator().manual_seed(i)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        model.save_pretrained(root / name)
        for f in base.iterdir():
            if f.name.startswith("tokenizer") or f.name == "special_tokens_map.json":
                shutil.copy(f, root / name / f.name)
        out[name] = root / name
    return out


FITNESS = {
    "tasks": [{"name": "evo_gsm8k_search_loglik"}],
    "limit": 3,
    "num_fewshot": 0,
    "batch_size": 4,
}


def write_config(path: Path, family: dict[str, Path], mode: str, **extra: object) -> Path:
    """A small search config over the family (mode ps / dfs / ps_dfs)."""
    doc: dict[str, object] = {
        "mode": mode,
        "models": {"math": str(family["math"]), "lang": str(family["lang"])},
        "fitness": FITNESS,
        "optimizer": {"population_size": 4, "seed": 0},
        "budget": {"max_trials": 6},
    }
    if mode in ("ps", "ps_dfs"):
        doc["base_model"] = str(family["base"])
        doc["ps"] = {"method": "dare_ties"}
    if mode in ("dfs", "ps_dfs"):
        doc["dfs"] = {"repeats": 2, "scales": "compact"}
    if mode == "ps_dfs":
        doc["ps_dfs"] = {"partner": "lang", "ps_trials": 4}
        doc["budget"] = {"max_trials": 8}
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(doc.get(k), dict):
            doc[k] = {**doc[k], **v}  # type: ignore[dict-item]
        else:
            doc[k] = v
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
