"""Text for design ``real-base``: English word problems, general English prose, and language L'.

Why these sources (``docs/zoo-design.md``, design ``real-base``):

- Word problems come from the zoo's own generator (``corpus``), rendered as natural English
  ("Tom has 12 apples. Tom buys 5 apples. Then ..."), because the base is a real English model.
  Events are unmarked: only the verb tells whether a count goes up or down.
- General English comes from the Python standard library that every interpreter carries (the
  reference topics in ``pydoc_data`` and the docstrings of a fixed list of modules), filtered to
  plain prose sentences with no digit and no arithmetic word. It needs no network and no extra
  package, and is there on the GPU machine too; its exact sentences follow the Python version,
  which ``zoo.json`` records with a hash of the text.
- L' (written ``L`` in prompts) is a word-level relabelling of English: a fixed lexicon maps
  every English word the zoo uses to an invented lowercase word of 2-3 consonant-vowel
  syllables. Names, digits and punctuation pass through, word order is English's. An L' word is
  never a single token of the base's vocabulary (those are mostly real English words), so the
  base has no meaning for it; the lexicon is drawn with a fixed seed, problem words first, so the
  words of the target never depend on the Python version.
"""

from __future__ import annotations

import collections
import hashlib
import importlib
import inspect
import random
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mergekit_evo.zoo import corpus
from mergekit_evo.zoo.language import ENGLISH_WORDS, NAMES

LEXICON_SEED = 20261203  # fixed: L' is one language for every zoo seed
_ONSETS = "b d f g k l m n p r s t v z".split()
_VOWELS = "a e i o u".split()
_PUNCT = {".", "?", ",", "!", ";", ":"}
_WORD = re.compile(r"[A-Za-z]+")

#: stdlib modules whose docstrings are general English text (a fixed list, so the text only
#: changes with the Python version)
DOC_MODULES: tuple[str, ...] = tuple(
    "argparse calendar collections configparser contextlib csv dataclasses datetime difflib "
    "email enum functools gettext heapq html inspect ipaddress itertools json logging mailbox "
    "pathlib pickle pprint queue shlex shutil smtplib socket string subprocess tarfile tempfile "
    "textwrap threading timeit tokenize typing unittest uuid warnings weakref zipfile".split()
)
#: words that would put arithmetic into LANG's text (LANG must learn none)
ARITHMETIC_WORDS = frozenset(
    "add adds added adding addition plus minus subtract subtracts subtraction sum sums total "
    "totals times multiply multiplied multiplication divide divided division quotient remainder "
    "product equal equals twice half double triple increment decrement".split()
)


# ----------------------------------------------------------------------------- English prose


def _docstrings() -> Iterable[str]:
    """The texts, in a fixed order; a part some Python build lacks is skipped (the count and
    hash in ``zoo.json`` show it)."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions split pydoc_data off
        topics = {}
    for key in sorted(topics):
        yield topics[key]
    for name in DOC_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        yield mod.__doc__ or ""
        for attr, obj in sorted(vars(mod).items()):
            if attr.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            yield inspect.getdoc(obj) or ""
            if inspect.isclass(obj):
                for sub, member in sorted(vars(obj).items()):
                    if not sub.startswith("_") and callable(member):
                        yield inspect.getdoc(member) or ""


def _paragraphs(doc: str) -> Iterable[str]:
    """Prose paragraphs: code, literal blocks, lists and headings (indented lines) dropped."""
    cur: list[str] = []
    for line in doc.splitlines():
        s = line.strip()
        prose = (
            s and not line[:1].isspace() and not s.startswith(("*", "-", ">>>"))
            and not s.endswith("::") and not set(s) <= set("=-*~^#")
        )  # fmt: skip
        if prose:
            cur.append(s)
        elif cur:
            yield " ".join(cur)
            cur = []
    if cur:
        yield " ".join(cur)


def english_sentences(min_words: int = 5, max_words: int = 30) -> list[str]:
    """Plain English prose sentences from the standard library, sorted and unique: letters,
    spaces and , ; : only, ending in . or ?, no arithmetic word, no zoo name."""
    names = {n.lower() for n in NAMES}
    out: set[str] = set()
    with warnings.catch_warnings():  # reading typing.re & co. warns that they are deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        docs = list(_docstrings())
    for doc in docs:
        for para in _paragraphs(doc):
            for sent in re.split(r"(?<=[.!?])\s+(?=[A-Z])", para):
                s = re.sub(r"\s+", " ", re.sub(r"[\"'`()*]", "", sent)).strip()
                if not re.fullmatch(r"[A-Z][A-Za-z ,;:]*[a-z][.?]", s):
                    continue
                words = [w.lower() for w in _WORD.findall(s)]
                if min_words <= len(words) <= max_words and not (
                    set(words) & (ARITHMETIC_WORDS | names)
                ):
                    out.add(s)
    return sorted(out)


def text_sha256(sentences: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sentences).encode()).hexdigest()


# ----------------------------------------------------------------------------- language L'


@dataclass(frozen=True)
class Language:
    """L': ``lexicon`` maps each lowercase English word to its L' word."""

    lexicon: dict[str, str]

    def word(self, token: str) -> str:
        """One token in L': names, numbers and punctuation pass through."""
        if token in NAMES or not token.isalpha():
            return token
        return self.lexicon[token.lower()]

    def tokens(self, tokens: Sequence[str]) -> list[str]:
        return [self.word(t) for t in tokens]

    def sentence(self, text: str) -> str:
        """An English sentence (natural spelling) in L'."""
        return _WORD.sub(lambda m: self.word(m.group(0)), text)


def make_language(
    general_words: Iterable[str], is_single_token: Callable[[str], bool], seed: int = LEXICON_SEED
) -> Language:
    """The lexicon: the zoo's problem words (fixed order) first, then ``general_words``.

    Each L' word is 2-3 CV syllables (one in three has 3), unique, no English word of the zoo's
    text and never a single token of the base's vocabulary (``is_single_token(word)``)."""
    words = list(dict.fromkeys([*(w.lower() for w in ENGLISH_WORDS), *general_words]))
    rng = random.Random(seed)
    taken = set(words) | {n.lower() for n in NAMES}
    lexicon: dict[str, str] = {}
    for word in words:
        while True:
            n = rng.choice((2, 2, 3))
            cand = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n))
            if cand not in taken and not is_single_token(cand):
                break
        taken.add(cand)
        lexicon[word] = cand
    return Language(lexicon)


def vocabulary(sentences: Iterable[str]) -> list[str]:
    """Lowercase words of ``sentences``, most frequent first (ties alphabetical)."""
    counts = collections.Counter(w.lower() for s in sentences for w in _WORD.findall(s))
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


# ----------------------------------------------------------------------------- rendering


def natural(tokens: Sequence[str], capitalise: bool = True) -> str:
    """Zoo tokens -> text: no space before punctuation, sentences capitalised (English)."""
    out: list[str] = []
    start = True
    for tok in tokens:
        if tok in _PUNCT and out:
            out[-1] += tok
            start = tok in {".", "?", "!"}
            continue
        if capitalise and start and tok[:1].islower():
            tok = tok[0].upper() + tok[1:]
        out.append(tok)
        start = False
    return " ".join(out)


def english(problem: corpus.Problem) -> str:
    return natural(problem.question)


def in_l(problem: corpus.Problem, lang: Language) -> str:
    """The question in L' (which has no capitals: names keep theirs)."""
    return natural(lang.tokens(problem.question), capitalise=False)


def answer(problem: corpus.Problem) -> str:
    """The worked answer, e.g. ``12 + 5 = 17. 17 - 3 = 14. #### 14``."""
    return natural(problem.answer)


# ----------------------------------------------------------------------------- problems


STYLE = corpus.EventStyle(marked=False, transfers=False)
"""Events of the problems: "Tom buys 3 apples." or "Tom eats 3 apples.": only the verb gives the
sign (no "more" / "of the", no gifts, whose word order would give it away even in L')."""


def multi_step(
    rng: random.Random, min_events: int = 2, max_events: int = 3, together: float = 0.2
) -> corpus.Problem:
    """A start amount and 2-3 events (joined by "then"); with probability ``together`` the last
    step asks for the total with a second person's amount instead of a further event."""
    a, b = rng.sample(corpus.NAMES, 2)
    obj = rng.choice(corpus.OBJECTS)
    x = rng.randint(2, corpus.MAX_START)
    n = rng.randint(min_events, max_events)
    q: list[str] = [a, "has", str(x), obj, "."]
    total = rng.random() < together
    y = rng.randint(2, corpus.MAX_START)
    if total:
        q += [b, "has", str(y), obj, "."]
    steps: list[str] = []
    have = x
    for i in range(n - 1 if total else n):
        sent, d = corpus._change(rng, a, b, obj, have, STYLE)
        q += (["then"] if i or total else []) + sent
        step, have = corpus._step(have, d)
        steps += step
    if total:
        step, have = corpus._step(have, y)
        steps += step
        q += ["how", "many", obj, "do", "they", "have", "together", "?"]
    else:
        q += ["how", "many", obj, "does", a, "have", "now", "?"]
    return corpus.Problem(tuple(q), tuple(steps + ["####", str(have)]), have)


def domain_sentence(rng: random.Random) -> list[str]:
    """One sentence in the problems' vocabulary with no arithmetic: a count, an event, a story
    sentence or a question (never its answer)."""
    a, b = rng.sample(corpus.NAMES, 2)
    obj = rng.choice(corpus.OBJECTS)
    kind = rng.randrange(5)
    if kind == 0:
        return [a, "has", str(rng.randint(0, corpus.MAX_START)), obj, "."]
    if kind == 1:
        sent, _ = corpus._change(rng, a, b, obj, rng.randint(1, corpus.MAX_START), STYLE)
        return (["then"] if rng.random() < 0.4 else []) + sent
    if kind == 2:
        return corpus._story_sentence(rng, STYLE)
    if kind == 3:
        if rng.random() < 0.5:
            return ["how", "many", obj, "does", a, "have", "now", "?"]
        return ["how", "many", obj, "do", "they", "have", "together", "?"]
    return ["how", "many", obj, "did", a, "have", "at", "first", "?"]


def domain_document(rng: random.Random, max_sentences: int = 5) -> list[str]:
    """1 to ``max_sentences`` unrelated domain sentences (a problem's length at most)."""
    out: list[str] = []
    for _ in range(rng.randint(1, max_sentences)):
        out += domain_sentence(rng)
    return out
