"""The one interface the search uses to turn a recipe into a scoreable model.

The disk builder (this issue) merges through MergeKit into a folder and loads it; an in-memory
GPU builder can implement the same two methods later without any change to the search.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Candidate:
    """A built model: what the fitness scores, and where its weights live (if on disk)."""

    model: Any
    tokenizer: Any
    path: Path | None = None


class CandidateBuilder(ABC):
    """Recipe -> :class:`Candidate`.  Raise any exception for a candidate that cannot be built;
    the search records it as a failed trial with the message as the reason."""

    @abstractmethod
    def build(self, recipe: dict[str, Any], workdir: Path) -> Candidate:
        """Build the model of ``recipe`` (a MergeKit config dict); ``workdir`` is scratch."""

    @abstractmethod
    def load(self, model_path: str) -> Candidate:
        """Load an existing model folder (source-model baselines) the same way."""

    def release(self, candidate: Candidate) -> None:
        """Free a candidate (memory, scratch files). Default: drop references."""
        candidate.model = None
        candidate.tokenizer = None
