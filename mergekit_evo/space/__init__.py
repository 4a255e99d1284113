"""Search spaces: a vector of numbers <-> a MergeKit YAML (PS, DFS and PS+DFS genomes)."""

from mergekit_evo.space.base import Space
from mergekit_evo.space.vector import Dim, VectorSpace, default_population_size

__all__ = ["Dim", "Space", "VectorSpace", "default_population_size"]
