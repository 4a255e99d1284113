"""Which decoder scores a model: one per layer stack, kept while the stack stays the same.

The resident PS builder writes every candidate into the same model, so its decoder, KV cache
and CUDA graphs live for the whole search; a new model object (a DFS route, a model loaded from
disk) gets a new decoder and the old one's memory is released.  The model is held weakly (a
new model may reuse a dead one's ``id``), so a released candidate is never mistaken for the next.
"""

from __future__ import annotations

import weakref

from torch import nn

from mergekit_evo.engine.decoder import GreedyDecoder
from mergekit_evo.engine.model import StackModel
from mergekit_evo.engine.stack import LayerStack, supports


class DecoderCache:
    """``decoder_for(model)``: the decoder of the last model seen, rebuilt when it changes."""

    def __init__(
        self, *, use_graphs: bool | None = None, check_every: int = 8, fuse: bool | None = None
    ) -> None:
        self.use_graphs = use_graphs
        self.check_every = check_every
        self.fuse = fuse  # GreedyDecoder's ``fuse`` (None: fused layer functions on CUDA)
        self._model: weakref.ref[nn.Module] | None = None
        self._decoder: GreedyDecoder | None = None

    def decoder_for(self, model: nn.Module, max_batch: int) -> GreedyDecoder | None:
        """The decoder for ``model``, or None when the engine cannot run it (use HF then)."""
        if self._model is not None and self._model() is model and self._decoder is not None:
            if self._decoder.max_batch >= max_batch:
                return self._decoder
        if isinstance(model, StackModel):
            stack = model.stack
        elif supports(model):
            stack = LayerStack.from_model(model)
        else:
            return None
        self._decoder = None  # drop the old cache and graphs before allocating new ones
        self._decoder = GreedyDecoder(
            stack,
            max_batch=max_batch,
            use_graphs=self.use_graphs,
            check_every=self.check_every,
            fuse=self.fuse,
        )
        self._model = weakref.ref(model)
        return self._decoder

    def clear(self) -> None:
        self._model = None
        self._decoder = None
