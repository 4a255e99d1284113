"""Final-answer extraction for math word problems (GSM8K, MGSM), in any of the MGSM languages.

lm-eval's own ``flexible-extract`` regex misses full-width digits (ja/zh) and compares strings, so
``18.0`` differs from ``18``; this module turns a free-form response into one canonical number.
"""

from __future__ import annotations

import math
import re
import unicodedata

# One number: optional minus, optional currency sign, digits with optional thousands separators,
# optional decimals. A minus must not follow a word character (``5-3`` is not ``-3``).
# Model output is untrusted, so every run of spaces is matched possessively (``*+``): a phrase
# followed by a megabyte of spaces must cost linear time, not minutes of backtracking.
_NUMBER = r"(?:(?<![\w.])-\s?)?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d++)(?:\.\d++)?"
_NUMBER_RE = re.compile(_NUMBER)

# "The answer is N" in the MGSM languages (the phrases of lm-eval's MGSM chain-of-thought prompts).
_ANSWER_PHRASES = (
    r"the answer is",
    r"answer\s*+:",
    r"die antwort lautet",
    r"la respuesta es",
    r"la réponse est",
    r"ответ\s*+[—–:-]?",
    r"jibu ni",
    r"సమాధానం",
    r"คำตอบคือ",
    r"答えは",
    r"答案是",
    r"উত্তর হল",
    r"উত্তর",
)
_ANSWER_RE = re.compile(
    r"(?:" + "|".join(_ANSWER_PHRASES) + r")\s*+[:：]?\s*+(" + _NUMBER + ")",
    re.IGNORECASE,
)
_HASHES_RE = re.compile(r"####\s*+(" + _NUMBER + ")")
# Minus signs that NFKC leaves alone.
_MINUS = str.maketrans({"\u2212": "-", "\u2012": "-", "\u2013": "-", "\ufe63": "-"})


def normalize_text(text: str) -> str:
    """NFKC (full-width digits, comma, dollar to ASCII) and unicode minus signs to ``-``."""
    return unicodedata.normalize("NFKC", text).translate(_MINUS)


_DIGITS_RE = re.compile(r"-?\d++(?:\.\d++)?")


def parse_number(token: str) -> float | None:
    """``"-$1,234.50"`` -> ``-1234.5``; None if the token holds no number.

    Only digit spellings count: ``float`` would also read ``nan``, ``inf`` and ``1e9``, which a
    model can write but a math answer never is.  A run of digits too long for a float is ``inf``.
    """
    cleaned = re.sub(r"[\s$,]", "", normalize_text(token))
    if not _DIGITS_RE.fullmatch(cleaned):
        return None
    try:
        return float(cleaned)
    except (ValueError, OverflowError):
        return None


def extract_numeric_answer(text: str | None) -> float | None:
    """The final numeric answer of a response, or None when it has no number.

    Priority: the number after the last ``####`` (GSM8K solutions), then the number after the last
    "The answer is" phrase (any MGSM language), then the last number in the text.
    """
    if not text:
        return None
    norm = normalize_text(text)
    for pattern in (_HASHES_RE, _ANSWER_RE):
        matches = pattern.findall(norm)
        if matches:
            return parse_number(matches[-1])
    matches = _NUMBER_RE.findall(norm)
    return parse_number(matches[-1]) if matches else None


def canonical_number(value: float) -> str:
    """One spelling per number, so string exact-match equals numeric equality: 18.0 -> ``"18"``.

    Model output is untrusted: a generated run of 300+ digits parses to ``inf`` (and ``int(inf)``
    raises), so a non-finite value gets a spelling no gold answer has and scores 0.
    """
    if not math.isfinite(value):
        return "[overflow]"
    if value == int(value):
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def canonical_answer(text: str | None, fallback: str = "[invalid]") -> str:
    """The canonical final answer of a response, or ``fallback`` when it has none."""
    value = extract_numeric_answer(text)
    return fallback if value is None else canonical_number(value)
