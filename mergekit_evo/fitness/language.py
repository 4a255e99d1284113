"""Which language a response is written in, for the paper's MGSM-JA rule (correct AND in Japanese).

py3langid ships its model inside the wheel (offline, ~5 MB, pure Python + numpy). Its candidate set
is narrowed to the MGSM languages so close relatives (uk for ru, wuu for zh) cannot win; Japanese
is also recognised by kana, which short kanji-heavy Japanese needs.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

#: Languages the identifier chooses among (the 11 MGSM languages).
LANGUAGES: tuple[str, ...] = ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")
_KANA = re.compile(r"[\u3040-\u30ff]")


@functools.lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE)
    ident.set_languages(list(LANGUAGES))
    return ident


def letter_count(text: str) -> int:
    """Letters (any script) in the text; digits, symbols and punctuation carry no language."""
    return sum(1 for ch in text if unicodedata.category(ch).startswith("L"))


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text among :data:`LANGUAGES`, or None when it has no letters."""
    if letter_count(text) == 0:
        return None
    if _KANA.search(text):
        return "ja"
    lang, _ = _identifier().classify(text)
    return str(lang)


def is_in_language(text: str, lang: str) -> bool:
    """Whether the response is written in ``lang``.

    A response without letters (a bare number, the expected output of the direct prompts) is
    language-neutral and passes; anything with words must be identified as ``lang``.
    """
    if lang not in LANGUAGES:
        raise ValueError(f"language {lang!r} not supported; choose one of {', '.join(LANGUAGES)}")
    detected = detect_language(text)
    return detected is None or detected == lang
