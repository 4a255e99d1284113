"""Recipe -> model: the :class:`CandidateBuilder` interface and the on-disk builder."""

from mergekit_evo.candidate.base import Candidate, CandidateBuilder
from mergekit_evo.candidate.disk import DiskCandidateBuilder

__all__ = ["Candidate", "CandidateBuilder", "DiskCandidateBuilder"]
