"""A layer stack as a ``torch.nn.Module`` that lm-eval's ``hf`` model (and ours) can wrap.

A DFS candidate routed over resident source layers has no Hugging Face class of its own; this
wrapper gives it what lm-eval reads from a model (``config``, ``device``, ``forward(ids).logits``)
while every weight stays where the sources keep it.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from mergekit_evo.engine.decoder import GreedyDecoder
from mergekit_evo.engine.stack import LayerStack


class StackModel(nn.Module):
    """``forward(input_ids).logits`` over a :class:`LayerStack` (no weights of its own)."""

    def __init__(self, stack: LayerStack) -> None:
        super().__init__()
        self.stack = stack
        self.config = stack.config
        self.generation_config = getattr(stack.config, "_generation_config", None)
        self._ref = [GreedyDecoder(stack, max_batch=1)]  # a list: not a registered submodule

    @property
    def device(self) -> torch.device:
        return self.stack.device

    @property
    def dtype(self) -> torch.dtype:
        return self.stack.dtype

    def tie_weights(self) -> None:
        """lm-eval calls this on every model; a stack borrows its weights, already tied."""

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, **_: object) -> SimpleNamespace:
        return SimpleNamespace(logits=self._ref[0].logits(input_ids))
