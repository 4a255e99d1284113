"""A reference DFS forward that literally routes the hidden state through source layers."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from mergekit_evo.methods.dfs import DataFlowPath


class _ScaledInput(nn.Module):
    """Multiplies the hidden state entering ``layer`` by the hop scale W[i][j]."""

    def __init__(self, layer: nn.Module, scale: float) -> None:
        super().__init__()
        self.layer = layer
        self.scale = scale
        if hasattr(layer, "attention_type"):  # Qwen2 picks its mask by this attribute
            self.attention_type = layer.attention_type

    def forward(self, hidden_states, *args, **kwargs):
        return self.layer(hidden_states * self.scale, *args, **kwargs)


def routed_model(models: Sequence[nn.Module], path: DataFlowPath, head: int = 0) -> nn.Module:
    """Model A's embeddings, the path's layers taken from the sources, then the final norm and
    head of ``models[head]`` (model A's by default)."""
    ref = copy.deepcopy(models[0])
    ref.model.norm = copy.deepcopy(models[head].model.norm)
    ref.lm_head = copy.deepcopy(models[head].lm_head)
    layers = [
        _ScaledInput(models[step.model].model.layers[step.layer], scale)
        for step, scale in zip(path.layers, path.hop_scales, strict=True)
    ]
    ref.model.layers = nn.ModuleList(layers)
    ref.config.num_hidden_layers = len(layers)
    if getattr(ref.config, "layer_types", None) is not None:
        ref.config.layer_types = [models[s.model].config.layer_types[s.layer] for s in path.layers]
    return ref


@torch.no_grad()
def logits(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model(input_ids=input_ids, use_cache=False).logits
