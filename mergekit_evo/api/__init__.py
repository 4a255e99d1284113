"""The notebook API in the shape of the original EvoMerge write-up, over the real search.

``CMAESConfig`` / ``CMAESOptimizer`` (generic CMA-ES), ``ps_merge_with_cmaes`` and
``hybrid_merge`` (a merge evolved by the search: storage, resume, run folder, report), the
benchmark scorers ``evaluate_gsm8k`` / ``evaluate_mgsm`` (the shipped lm-eval tasks), and
``EvolutionConfig`` + ``Phase2Pipeline``. Every merge is a MergeKit recipe; models may be
folders, hub names in the local cache, or ``PreTrainedModel`` objects. See docs/api.md.
"""

from mergekit_evo.api.benchmarks import evaluate_gsm8k, evaluate_mgsm
from mergekit_evo.api.errors import APIConfigError
from mergekit_evo.api.merge import (
    HybridMergeResult,
    PSMergeResult,
    api_metrics,
    hybrid_merge,
    ps_merge_with_cmaes,
)
from mergekit_evo.api.optimizer import CMAESConfig, CMAESOptimizer
from mergekit_evo.api.pipeline import EvolutionConfig, Phase2Pipeline

__all__ = [
    "APIConfigError",
    "CMAESConfig",
    "CMAESOptimizer",
    "EvolutionConfig",
    "HybridMergeResult",
    "PSMergeResult",
    "Phase2Pipeline",
    "api_metrics",
    "evaluate_gsm8k",
    "evaluate_mgsm",
    "hybrid_merge",
    "ps_merge_with_cmaes",
]
