"""Offline model zoo for evolutionary-merge tests and proofs (issue 5).

A deterministic, CPU-buildable miniature of the paper's setting (Akiba et al., arXiv 2403.13187):
a base causal LM, two fine-tunes with complementary skills and a target task that needs both.
Design ``verbs`` (default): MATH (two-step word problems) + VERBS (8 verbs the base never learnt
the meaning of); design ``lang``: MATH + LANG (an invented language L). Everything is built from
a seed with no network access; see ``docs/zoo-design.md``.

Modules, one concept each: ``language`` (the invented words: L and the new verbs), ``corpus``
(text generators), ``designs`` (what each design trains and tests), ``tokenizer`` (word-level
tokenizer), ``sizes`` (model/training presets), ``train`` (pretraining and fine-tuning loops),
``tasks`` (jsonl splits and lm-eval YAML), ``evaluate`` (greedy sanity accuracy), ``build`` (the
whole pipeline and ``zoo.json``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_zoo"]


def build_zoo(*args: Any, **kwargs: Any) -> dict:
    """Build a zoo; see :func:`mergekit_evo.zoo.build.build_zoo` (imported lazily: torch)."""
    from mergekit_evo.zoo.build import build_zoo as _build

    return _build(*args, **kwargs)
