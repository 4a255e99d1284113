"""Offline model zoo for evolutionary-merge tests and proofs (issue 5).

A deterministic, CPU-buildable miniature of the paper's setting (Akiba et al., arXiv 2403.13187):
a base causal LM, a MATH fine-tune (English two-step word problems) and a LANG fine-tune (an
invented language L), plus a target task (two-step problems written in L) that needs both skills.
Everything is built from a seed with no network access; see ``docs/zoo-design.md``.

Modules, one concept each: ``language`` (the invented language L), ``corpus`` (text generators),
``tokenizer`` (word-level tokenizer), ``sizes`` (model/training presets), ``train`` (pretraining
and fine-tuning loops), ``tasks`` (jsonl splits and lm-eval YAML), ``evaluate`` (greedy sanity
accuracy), ``build`` (the whole pipeline and ``zoo.json``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_zoo"]


def build_zoo(*args: Any, **kwargs: Any) -> dict:
    """Build a zoo; see :func:`mergekit_evo.zoo.build.build_zoo` (imported lazily: torch)."""
    from mergekit_evo.zoo.build import build_zoo as _build

    return _build(*args, **kwargs)
