"""The one exception type of the fitness layer, so callers can catch bad input in one place."""

from __future__ import annotations


class FitnessError(ValueError):
    """Bad fitness input: unknown task, missing data folder, metric the task does not produce."""
