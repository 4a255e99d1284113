"""Language identification on real MGSM rows, and the language-gate filter."""

from __future__ import annotations

import pytest

from mergekit_evo.fitness.language import LANGUAGES, detect_language, is_in_language

from .conftest import DATA


def _questions(lang: str, n: int = 40) -> list[str]:
    lines = (DATA / "mgsm" / f"mgsm_{lang}.tsv").read_text(encoding="utf-8").splitlines()
    return [line.rsplit("\t", 1)[0] for line in lines[:n]]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_detects_real_mgsm_questions(lang: str) -> None:
    detected = [detect_language(q) for q in _questions(lang)]
    wrong = [(q[:40], d) for q, d in zip(_questions(lang), detected, strict=True) if d != lang]
    assert not wrong, wrong


def test_japanese_vs_chinese_short_answers() -> None:
    assert detect_language("答えは18です。") == "ja"
    assert detect_language("珍妮特每天赚18美元，答案是 18。") == "zh"
    assert detect_language("She makes 18 dollars every day. The answer is 18.") == "en"


def test_neutral_and_foreign_responses() -> None:
    assert detect_language("18") is None
    assert is_in_language("18", "ja")  # a bare number has no language: passes
    assert not is_in_language("Janet sells 9 eggs for 18 dollars. The answer is 18.", "ja")
    assert is_in_language("ジャネットは毎日18ドル稼ぎます。答えは18です。", "ja")
    with pytest.raises(ValueError, match="supported"):
        is_in_language("x", "xx")


def test_language_gate_filter_blanks_foreign_responses() -> None:
    from lm_eval.api.registry import get_filter

    from mergekit_evo.fitness.filters import LANGUAGE_FILTER

    gate = get_filter(LANGUAGE_FILTER)(lang="ja")
    out = gate.apply([["答えは18です。"], ["The answer is 18."], ["18"]], [{}, {}, {}])
    assert out == [["答えは18です。"], [""], ["18"]]
