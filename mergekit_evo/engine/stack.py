"""A decoder-only model as a *layer stack*: embeddings, a list of decoder layers, norm and head.

The fast decoder and the DFS routed model both work on this one shape.  A plain Hugging Face
model of the Llama family is a stack of its own layers; a DFS candidate is a stack whose layers
are borrowed from several resident source models (a layer may appear more than once) with an
input scale per position (the paper's W on the hop into that layer).  No weight is copied.

Only the Llama family (llama, mistral, qwen2, qwen3) is supported: the same architectures the
DFS folding supports, and the ones whose decoder layer this package can step with its own KV
cache (pre-norm, rotary, grouped-query attention, gated MLP).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

#: model_type values whose decoder layers :mod:`mergekit_evo.engine.decoder` can step
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")


class UnsupportedModel(ValueError):
    """The model is not a Llama-family decoder the engine can run (callers fall back to HF)."""


@dataclass
class LayerStack:
    """The modules a forward pass runs through, in order; all borrowed, none owned."""

    embed: nn.Module
    layers: list[nn.Module]
    scales: list[float]  # input scale of each position (1.0: unscaled)
    norm: nn.Module
    head: nn.Module
    rotary: nn.Module
    config: Any  # model A's config (head counts, vocab)
    sliding_windows: list[int | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.scales) != len(self.layers):
            raise ValueError(f"{len(self.layers)} layers but {len(self.scales)} scales")
        if not self.sliding_windows:
            self.sliding_windows = [_sliding_window(layer) for layer in self.layers]

    @property
    def num_kv_heads(self) -> int:
        return int(self.layers[0].self_attn.k_proj.out_features // self.head_dim)

    @property
    def head_dim(self) -> int:
        return int(self.layers[0].self_attn.head_dim)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.head.weight.dtype

    def max_context(self) -> int | None:
        """The shortest sliding window on the path (None: attention is global everywhere)."""
        windows = [w for w in self.sliding_windows if w]
        return min(windows) if windows else None

    @classmethod
    def from_model(cls, model: nn.Module) -> LayerStack:
        """The stack of a Hugging Face causal LM of the Llama family, its layers in order."""
        inner = _inner(model)
        return cls(
            embed=inner.embed_tokens,
            layers=list(inner.layers),
            scales=[1.0] * len(inner.layers),
            norm=inner.norm,
            head=model.lm_head,
            rotary=inner.rotary_emb,
            config=model.config,
        )

    @classmethod
    def routed(
        cls,
        models: Sequence[nn.Module],
        path: Sequence[tuple[int, int]],
        scales: Sequence[float],
        head: int = 0,
    ) -> LayerStack:
        """Model A's (``models[0]``) embeddings, then ``path``: (model index, layer index)
        pairs, then the final norm and head of ``models[head]`` (model A's by default, as the
        ``dfs`` method's ``head_model``)."""
        a = _inner(models[0])
        inners = [_inner(m) for m in models]
        return cls(
            embed=a.embed_tokens,
            layers=[inners[m].layers[i] for m, i in path],
            scales=[float(s) for s in scales],
            norm=inners[head].norm,
            head=models[head].lm_head,
            rotary=a.rotary_emb,
            config=models[0].config,
        )


def _inner(model: nn.Module) -> Any:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedModel(
            f"model_type {model_type!r} is not one the fast engine runs "
            f"({', '.join(SUPPORTED_MODEL_TYPES)})"
        )
    inner = getattr(model, "model", None)
    for name in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(inner, name):
            raise UnsupportedModel(f"{type(model).__name__} has no model.{name}")
    if not hasattr(model, "lm_head"):
        raise UnsupportedModel(f"{type(model).__name__} has no lm_head")
    return inner


def _sliding_window(layer: nn.Module) -> int | None:
    attn = layer.self_attn
    if hasattr(attn, "sliding_window"):  # qwen2/qwen3: per layer (None on full-attention layers)
        window = attn.sliding_window
    else:  # mistral reads it from the config
        window = getattr(getattr(attn, "config", None), "sliding_window", None)
    return int(window) if window else None


def supports(model: nn.Module) -> bool:
    """Whether :meth:`LayerStack.from_model` accepts ``model``."""
    try:
        _inner(model)
    except UnsupportedModel:
        return False
    return True
