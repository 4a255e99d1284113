"""The invented language L: English with every content word replaced by an invented word.

Why an invented language: the paper merges a math model with a Japanese model; offline and at a
few hundred thousand parameters we need a "second language" whose text shares nothing with English
but names, digits and symbols, so a model can only read it after being taught it. L is a
word-by-word relabelling of English (same word order), which keeps the meaning identical and
makes parallel and code-switched text trivial to produce. The lexicon is fixed (its own seed), so
every zoo shares one tokenizer vocabulary whatever the build seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

NAMES: tuple[str, ...] = (
    "Tom", "Mia", "Sam", "Ana", "Ben", "Lea", "Max", "Eva", "Leo", "Ida", "Kai", "Zoe",
)  # fmt: skip
OBJECTS: tuple[str, ...] = (
    "apples", "eggs", "books", "cookies", "marbles", "pens",
    "cards", "shells", "coins", "stamps", "cups", "toys",
)  # fmt: skip
GAIN_VERBS: tuple[str, ...] = ("buys", "finds", "gets", "picks", "makes", "wins")
LOSS_VERBS: tuple[str, ...] = ("eats", "loses", "sells", "breaks", "drops", "uses")
FUNCTION_WORDS: tuple[str, ...] = (
    "has", "have", "had", "does", "do", "did", "gives", "to", "more", "then", "how", "many",
    "now", "and", "they", "together", "who", "the", "at", "first", "fewer", "of", "a", "day",
    "later", "likes", "plays", "with", "is", "are", "happy", "sad", "home", "goes", "sees",
)  # fmt: skip
ENGLISH_WORDS: tuple[str, ...] = OBJECTS + GAIN_VERBS + LOSS_VERBS + FUNCTION_WORDS
"""Every English word that L renames (names, numbers and symbols are shared)."""

_LEXICON_SEED = 20240319  # fixed: L is the same language in every zoo
_ONSETS = "b d f g k l m n p r s t v z".split()
_VOWELS = "a e i o u".split()


def _make_lexicon() -> dict[str, str]:
    """English word -> invented word: 2-3 CV syllables, unique, never an English word or name."""
    rng = random.Random(_LEXICON_SEED)
    taken = {w.lower() for w in ENGLISH_WORDS + NAMES}
    lexicon: dict[str, str] = {}
    for word in ENGLISH_WORDS:
        while True:
            n = rng.choice((2, 2, 3))
            cand = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n))
            if cand not in taken:
                break
        taken.add(cand)
        lexicon[word] = cand
    return lexicon


LEXICON: dict[str, str] = _make_lexicon()
L_WORDS: tuple[str, ...] = tuple(LEXICON[w] for w in ENGLISH_WORDS)


NEW_VERB_COUNT = 4  # per sign: 4 new gain verbs, 4 new loss verbs
_NEW_VERB_SEED = 20240320


def _make_new_verbs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Invented verbs for the ``verbs`` design, disjoint from L and from English (fixed seed)."""
    rng = random.Random(_NEW_VERB_SEED)
    taken = {w.lower() for w in ENGLISH_WORDS + NAMES} | set(LEXICON.values())
    words: list[str] = []
    while len(words) < 2 * NEW_VERB_COUNT:
        cand = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(2)) + "s"
        if cand not in taken:
            taken.add(cand)
            words.append(cand)
    return tuple(words[:NEW_VERB_COUNT]), tuple(words[NEW_VERB_COUNT:])


NEW_GAIN_VERBS, NEW_LOSS_VERBS = _make_new_verbs()
"""Verbs no base document gives a meaning: the base reads them in sentences whose numbers carry no
sign (stories, "how many at first"), and only the VERBS source learns which add and which take
away (``docs/zoo-design.md``, design ``verbs``)."""


def to_l(tokens: Sequence[str]) -> list[str]:
    """Translate whitespace tokens to L; names, numbers and symbols pass through."""
    return [LEXICON.get(t, t) for t in tokens]


def code_switch(tokens: Sequence[str], rng: random.Random, p: float) -> list[str]:
    """Translate each translatable token to L independently with probability ``p``."""
    return [LEXICON[t] if t in LEXICON and rng.random() < p else t for t in tokens]
