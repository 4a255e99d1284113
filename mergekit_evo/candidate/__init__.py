"""Recipe -> model: the :class:`CandidateBuilder` interface, on disk or in accelerator memory."""

from __future__ import annotations

from mergekit_evo.candidate.base import Candidate, CandidateBuilder
from mergekit_evo.candidate.disk import DiskCandidateBuilder

__all__ = ["Candidate", "CandidateBuilder", "DiskCandidateBuilder", "make_builder"]


def make_builder(
    kind: str, device: str, dtype: str, random_seed: int, trust_remote_code: bool = False
) -> CandidateBuilder:
    """``memory`` (or ``auto`` on CUDA): :class:`ResidentCandidateBuilder`; else on disk."""
    if kind == "memory" or (kind == "auto" and device.startswith("cuda")):
        from mergekit_evo.candidate.resident import ResidentCandidateBuilder

        return ResidentCandidateBuilder(device, dtype, random_seed, trust_remote_code)
    return DiskCandidateBuilder(device, dtype, random_seed, trust_remote_code)
