"""The evolutionary search, in five parts whose imports run one way (run > stage > fleet >
scoring, rundir): ``run/`` one whole search and its outputs, ``stage/`` one stage's study and
ask/tell loop, ``fleet/`` the processes sharing a study, ``scoring/`` a candidate -> a fitness,
``rundir/`` the files of a run folder."""

from mergekit_evo.search.run.hybrid import hybrid_merge
from mergekit_evo.search.run.runner import SearchResult, apply_overrides, run_search

__all__ = ["SearchResult", "apply_overrides", "hybrid_merge", "run_search"]
