"""Model output is untrusted: answer extraction, language identification and both filters take
any string (huge numbers, nan/inf spellings, control characters, megabytes) and never raise."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mergekit_evo.fitness.answers import (
    canonical_answer,
    canonical_number,
    extract_numeric_answer,
    parse_number,
)
from mergekit_evo.fitness.filters import LanguageGateFilter, NumericAnswerFilter
from mergekit_evo.fitness.language import LANGUAGES, detect_language, is_in_language

CANONICAL = re.compile(r"^-?\d+(\.\d+)?$|^\[overflow\]$|^\[invalid\]$")

# pieces a broken model writes: answer phrases, digit runs of any length, number spellings
# float() would accept, control characters, full-width and native digits, long blank runs
_PIECES = st.one_of(
    st.sampled_from(
        [
            "The answer is ",
            "答えは",
            "Ответ — ",
            "####",
            "answer:",
            "nan",
            "NaN",
            "-inf",
            "Infinity",
            "1e309",
            "-0",
            "$",
            ",",
            ".",
            "-",
            "１８",
            "১৮",
            "\x00",
            "\x1b[2J",
            "\u202e",
            "\ufeff",
            "\r\n",
            "\t",
        ]
    ),
    st.integers(min_value=1, max_value=2000).map(lambda n: "9" * n),
    st.integers(min_value=1, max_value=5000).map(lambda n: " " * n),
    st.text(max_size=40),
)
UNTRUSTED = st.one_of(st.text(), st.lists(_PIECES, max_size=30).map("".join))
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(UNTRUSTED)
def test_answer_extraction_takes_any_string(text: str) -> None:
    value = extract_numeric_answer(text)
    assert value is None or isinstance(value, float)
    if value is not None:
        assert value == value  # never NaN: only digit spellings are numbers
    out = canonical_answer(text)
    assert CANONICAL.match(out), out


@FAST
@given(st.text())
def test_parse_number_takes_any_token(token: str) -> None:
    value = parse_number(token)
    assert value is None or value == value


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_canonical_number_takes_any_float(value: float) -> None:
    assert CANONICAL.match(canonical_number(value))


@pytest.mark.parametrize("spelling", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "1e5"])
def test_float_spellings_are_not_answers(spelling: str) -> None:
    assert parse_number(spelling) is None
    expected = spelling.split("e")[0] if spelling[0].isdigit() else "[invalid]"
    assert canonical_answer(f"The answer is {spelling}") == expected  # 1e5: its digits, 1


@settings(max_examples=150, deadline=None)
@given(UNTRUSTED, st.sampled_from(LANGUAGES))
def test_language_id_takes_any_string(text: str, lang: str) -> None:
    detected = detect_language(text)
    assert detected is None or detected in LANGUAGES
    assert isinstance(is_in_language(text, lang), bool)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.one_of(UNTRUSTED, st.none(), st.integers()), max_size=3), max_size=4))
def test_filters_take_any_responses(resps: list[list[object]]) -> None:
    docs = [{} for _ in resps]
    numeric = NumericAnswerFilter().apply(resps, docs)
    assert [len(r) for r in numeric] == [len(r) for r in resps]
    assert all(CANONICAL.match(a) for inst in numeric for a in inst)
    gated = LanguageGateFilter("ja").apply(resps, docs)
    assert all(isinstance(a, str) for inst in gated for a in inst)


@pytest.mark.parametrize(
    "text",
    [
        "the answer is" + " " * 1_000_000 + "x",  # was minutes of regex backtracking
        "Ответ" + " " * 1_000_000 + "—" + " " * 10,
        ("#### " + " " * 60) * 20_000,
        "9" * 1_000_000,
        "The cat sat on the mat. " * 50_000,
        "\x00\x07\x1b" * 300_000,
    ],
    ids=["phrase+spaces", "ru-phrase+spaces", "hashes", "digits", "prose", "control"],
)
def test_megabytes_score_in_linear_time(text: str) -> None:
    t0 = time.monotonic()
    canonical_answer(text)
    NumericAnswerFilter().apply([[text]], [{}])
    LanguageGateFilter("en").apply([[text]], [{}])
    assert time.monotonic() - t0 < 10  # about 1-2 s on two shared CPU cores
