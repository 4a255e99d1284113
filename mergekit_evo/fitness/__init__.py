"""Fitness: score a model (in memory) on lm-eval tasks; the shipped GSM8K/MGSM task YAML.

Importing this package is cheap: lm-eval and torch load only when an evaluator is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mergekit_evo.fitness.errors import FitnessError
from mergekit_evo.fitness.registry import SHIPPED_TASKS, TASKS_DIR, is_report_split
from mergekit_evo.fitness.spec import FitnessSpec, TaskSpec

if TYPE_CHECKING:
    from mergekit_evo.fitness.evaluator import FitnessEvaluator, FitnessResult

__all__ = [
    "SHIPPED_TASKS",
    "TASKS_DIR",
    "FitnessError",
    "FitnessEvaluator",
    "FitnessResult",
    "FitnessSpec",
    "TaskSpec",
    "is_report_split",
]


def __getattr__(name: str) -> Any:
    if name in ("FitnessEvaluator", "FitnessResult"):
        from mergekit_evo.fitness import evaluator

        return getattr(evaluator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
