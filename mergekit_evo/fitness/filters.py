"""lm-eval filters of our own, registered under names the shipped task YAML uses.

``evo_numeric`` canonicalises the final number (full-width digits, thousands separators, ``18.0``
== ``18``) where lm-eval's regex filters compare raw strings; ``evo_language_gate`` blanks a
response that is not in the required language, so a later extraction finds no answer.
Importing this module registers both (the shipped task class imports it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from lm_eval.api.filter import Filter
from lm_eval.api.registry import register_filter

from mergekit_evo.fitness.answers import canonical_answer
from mergekit_evo.fitness.language import is_in_language

NUMERIC_FILTER = "evo_numeric"
LANGUAGE_FILTER = "evo_language_gate"


@register_filter(NUMERIC_FILTER)
class NumericAnswerFilter(Filter):
    """Each response -> its canonical final number (``[invalid]`` when it has none)."""

    def __init__(self, fallback: str = "[invalid]") -> None:
        self.fallback = fallback

    def apply(
        self, resps: Iterable[Sequence[str]], docs: Sequence[dict[str, Any]]
    ) -> Iterable[list[str]]:
        return [
            [canonical_answer(r if isinstance(r, str) else "", self.fallback) for r in inst]
            for inst in resps
        ]


@register_filter(LANGUAGE_FILTER)
class LanguageGateFilter(Filter):
    """Each response not written in ``lang`` -> empty string (language-neutral ones pass)."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def apply(
        self, resps: Iterable[Sequence[str]], docs: Sequence[dict[str, Any]]
    ) -> Iterable[list[str]]:
        return [
            [r if isinstance(r, str) and is_in_language(r, self.lang) else "" for r in inst]
            for inst in resps
        ]
