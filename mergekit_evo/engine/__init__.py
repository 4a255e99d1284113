"""The scoring engine: layer stacks, a static-cache greedy decoder with CUDA graphs.

Bottom layer (imports only torch and transformers): :mod:`mergekit_evo.fitness` runs lm-eval on
it, :mod:`mergekit_evo.candidate` builds the stacks (resident PS model, routed DFS paths).
"""

from mergekit_evo.engine.cache import DecoderCache
from mergekit_evo.engine.decoder import DecodeStats, GreedyDecoder
from mergekit_evo.engine.model import StackModel
from mergekit_evo.engine.stack import LayerStack, UnsupportedModel, supports

__all__ = [
    "DecodeStats",
    "DecoderCache",
    "GreedyDecoder",
    "LayerStack",
    "StackModel",
    "UnsupportedModel",
    "supports",
]
