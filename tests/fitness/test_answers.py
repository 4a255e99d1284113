"""Final-answer extraction on real-looking outputs (en, ja, zh, ...), and the lm-eval filter."""

from __future__ import annotations

import pytest

from mergekit_evo.fitness.answers import canonical_answer, canonical_number, extract_numeric_answer

CASES = [
    # GSM8K worked solution: the number after '####' wins over later numbers
    ("She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18", 18.0),
    ("#### 70000\nQuestion: Josh has 3 apples", 70000.0),
    ("It costs 5,000 dollars.\n#### 5,000", 5000.0),
    # "The answer is N" wins over the last number
    ("So 16 - 3 - 4 = 9 eggs. 9 * 2 = 18. The answer is 18. Then 5 more.", 18.0),
    ("The answer is $1,234.50.", 1234.5),
    ("The answer is -3.", -3.0),
    ("Die Antwort lautet 42.", 42.0),
    ("La respuesta es 7.", 7.0),
    ("La réponse est 12.", 12.0),
    ("Ответ — 15.", 15.0),
    ("Jibu ni 8.", 8.0),
    # Japanese / Chinese, full-width digits and punctuation
    ("ジャネットは毎日９個の卵を売るので、９×２＝１８ドルです。答えは１８です。", 18.0),
    ("答えは18です。", 18.0),
    ("彼女は毎日１，２００円を稼ぎます。", 1200.0),
    ("每天卖 9 个鸡蛋，9 × 2 = 18。答案是 18。", 18.0),
    ("答案是 ３．５。", 3.5),
    # native digits (Bengali, Thai) are decimal digits too
    ("উত্তর হল ১৮।", 18.0),
    ("คำตอบคือ ๑๘", 18.0),
    ("సమాధానం 18.", 18.0),
    # last number, thousands separators, dollars, decimals, negatives
    ("He earned $10 per hour for 1,200 hours: $12,000", 12000.0),
    ("18.0", 18.0),
    ("18.", 18.0),
    ("  -7 ", -7.0),
    ("The temperature fell to −4 degrees", -4.0),
    ("5-3=2", 2.0),
    ("0.25", 0.25),
    ("1,000,000", 1000000.0),
    # no number at all
    ("I do not know.", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_extract_numeric_answer(text: str, expected: float | None) -> None:
    assert extract_numeric_answer(text) == expected


@pytest.mark.parametrize(
    ("value", "text"), [(18.0, "18"), (18, "18"), (-3.0, "-3"), (0.5, "0.5"), (1234.5, "1234.5")]
)
def test_canonical_number(value: float, text: str) -> None:
    assert canonical_number(value) == text


def test_equal_numbers_spell_the_same() -> None:
    assert canonical_answer("The answer is 18.0") == canonical_answer("答えは１８です。") == "18"
    assert canonical_answer("no number") == "[invalid]"


def test_numeric_filter_is_registered_and_canonicalises() -> None:
    from lm_eval.api.registry import get_filter

    import mergekit_evo.fitness.filters as filters

    cls = get_filter(filters.NUMERIC_FILTER)
    assert cls is filters.NumericAnswerFilter
    out = cls().apply([["答えは１，８００です。", "#### 7"], ["nothing"]], [{}, {}])
    assert out == [["1800", "7"], ["[invalid]"]]


@pytest.mark.parametrize(
    "text",
    [
        "the answer is " + "9" * 400,  # parses to inf: int(inf) raised OverflowError on a GPU run
        "#### " + "1" * 5000,
        "-" + "9" * 400 + ".5",
        "1e400 nan inf " + "7" * 310,
    ],
)
def test_huge_generated_numbers_score_zero_without_raising(text: str) -> None:
    out = canonical_answer(text)
    assert out == "[overflow]"
    assert out != canonical_answer("The answer is 18")
