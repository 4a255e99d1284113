"""The evolutionary search: Optuna study, ask/tell loop, stopping, run directory, outputs."""

from mergekit_evo.search.hybrid import hybrid_merge
from mergekit_evo.search.runner import SearchResult, apply_overrides, run_search

__all__ = ["SearchResult", "apply_overrides", "hybrid_merge", "run_search"]
