"""Text generators: word problems, stories, QA and arithmetic in English, L and code-switched form.

Why this mix (lessons from the designs in ``docs/zoo-design.md``): a merge can only combine skills
that live in shared representations, so the base must already (a) read both languages through
parallel and code-switched text and (b) know the answer format and one-step arithmetic. The
fine-tunes then each add one small, nearly orthogonal skill: MATH chains two steps (English only),
LANG reads L word problems. The target, two-step problems in L, needs both.

All generators draw from a ``random.Random`` handed in, so a seed fixes every byte of data.
Text is whitespace-tokenised by construction (``" ".join(tokens)``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mergekit_evo.zoo.language import (
    GAIN_VERBS,
    LOSS_VERBS,
    NAMES,
    NEW_GAIN_VERBS,
    NEW_LOSS_VERBS,
    OBJECTS,
    code_switch,
    to_l,
)

MAX_START = 20  # starting amounts 2..MAX_START
MAX_CHANGE = 9  # changes 1..MAX_CHANGE; every value stays in 0..49 (single number tokens)
MAX_NUMBER = 99  # the tokenizer has one token per integer 0..MAX_NUMBER

Tokens = list[str]


@dataclass(frozen=True)
class EventStyle:
    """How events that change a count are worded.

    ``marked``: gains read "buys 3 more apples", losses "eats 3 of the apples", so the syntax
    alone gives the sign away; unmarked, both read "buys 3 apples" and only the verb tells.
    ``transfers``: also "gives 3 of the apples to B" / "B gives A 3 more apples" events.
    """

    gain_verbs: tuple[str, ...] = GAIN_VERBS
    loss_verbs: tuple[str, ...] = LOSS_VERBS
    marked: bool = True
    transfers: bool = True


ENGLISH = EventStyle()
"""The ``lang`` design's wording (every generator's default)."""
KNOWN_VERBS = EventStyle(marked=False)
"""``verbs`` design: the verbs the base learns the meaning of, sign carried by the verb only."""
ANY_VERBS = EventStyle(GAIN_VERBS + NEW_GAIN_VERBS, LOSS_VERBS + NEW_LOSS_VERBS, marked=False)
"""``verbs`` design, text whose numbers carry no sign: the base reads the new verbs here."""
NEW_VERBS = EventStyle(NEW_GAIN_VERBS, NEW_LOSS_VERBS, marked=False, transfers=False)
"""``verbs`` design: only the new verbs (the VERBS source's data and the target)."""


@dataclass(frozen=True)
class Problem:
    """A word problem in English tokens with its worked answer (``... #### N``)."""

    question: tuple[str, ...]
    answer: tuple[str, ...]
    value: int

    @property
    def key(self) -> str:
        """Identity used to keep splits disjoint (the English question)."""
        return " ".join(self.question)


# ----------------------------------------------------------------------------- problems


def _two_names(rng: random.Random) -> tuple[str, str]:
    a, b = rng.sample(NAMES, 2)
    return a, b


def _change(
    rng: random.Random, who: str, other: str, obj: str, have: int, style: EventStyle = ENGLISH
) -> tuple[Tokens, int]:
    """One event changing ``who``'s count: returns the sentence and the signed change."""
    kinds = ["gain"] + (["receive"] if style.transfers else [])
    if have >= 1:
        kinds += ["loss"] + (["give"] if style.transfers else [])
    kind = rng.choice(kinds)
    if kind in ("gain", "receive"):
        # unmarked: a gain is capped like a loss, or "the amount never exceeds what A has"
        # would tell a loss verb from a gain verb in text that is meant to carry no sign
        y = rng.randint(1, MAX_CHANGE if style.marked else min(MAX_CHANGE, max(1, have)))
        if kind == "gain":
            more = ["more"] if style.marked else []
            return [who, rng.choice(style.gain_verbs), str(y), *more, obj, "."], y
        return [other, "gives", who, str(y), "more", obj, "."], y
    y = rng.randint(1, min(MAX_CHANGE, have))
    if kind == "loss":
        of_the = ["of", "the"] if style.marked else []
        return [who, rng.choice(style.loss_verbs), str(y), *of_the, obj, "."], -y
    return [who, "gives", str(y), "of", "the", obj, "to", other, "."], -y


def _step(a: int, d: int) -> tuple[Tokens, int]:
    r = a + d
    return [str(a), "+" if d >= 0 else "-", str(abs(d)), "=", str(r), "."], r


def one_step(rng: random.Random, style: EventStyle = ENGLISH, together: float = 0.2) -> Problem:
    """Start amount plus one change (or, with probability ``together``, two people's total)."""
    a, b = _two_names(rng)
    obj = rng.choice(OBJECTS)
    x = rng.randint(2, MAX_START)
    q: Tokens = [a, "has", str(x), obj, "."]
    if rng.random() < together:
        y = rng.randint(2, MAX_START)
        q += [b, "has", str(y), obj, ".", "how", "many", obj, "do", "they", "have", "together", "?"]
        ans, r = _step(x, y)
    else:
        sent, d = _change(rng, a, b, obj, x, style)
        q += sent + ["how", "many", obj, "does", a, "have", "now", "?"]
        ans, r = _step(x, d)
    return Problem(tuple(q), tuple(ans + ["####", str(r)]), r)


def two_step(rng: random.Random, style: EventStyle = ENGLISH) -> Problem:
    """Start amount plus two changes (the second after ``then``), or a change then a total."""
    a, b = _two_names(rng)
    obj = rng.choice(OBJECTS)
    x = rng.randint(2, MAX_START)
    q: Tokens = [a, "has", str(x), obj, "."]
    if rng.random() < 0.2:
        y = rng.randint(2, MAX_START)
        q += [b, "has", str(y), obj, "."]
        sent, d = _change(rng, a, b, obj, x, style)
        s1, r1 = _step(x, d)
        s2, r2 = _step(r1, y)
        q += ["then"] + sent + ["how", "many", obj, "do", "they", "have", "together", "?"]
    else:
        sent1, d1 = _change(rng, a, b, obj, x, style)
        s1, r1 = _step(x, d1)
        sent2, d2 = _change(rng, a, b, obj, r1, style)
        s2, r2 = _step(r1, d2)
        q += sent1 + ["then"] + sent2 + ["how", "many", obj, "does", a, "have", "now", "?"]
    return Problem(tuple(q), tuple(s1 + s2 + ["####", str(r2)]), r2)


def sample_problems(
    rng: random.Random,
    make: Callable[[random.Random], Problem],
    n: int,
    banned: set[str] | None = None,
    unique: bool = False,
) -> list[Problem]:
    """``n`` problems from ``make``, none whose key is ``banned`` (and no repeats if ``unique``)."""
    banned = banned if banned is not None else set()
    seen: set[str] = set()
    out: list[Problem] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 100 * n + 1000:
            raise RuntimeError(f"could not draw {n} distinct problems")
        p = make(rng)
        if p.key in banned or (unique and p.key in seen):
            continue
        seen.add(p.key)
        out.append(p)
    return out


def render(problem: Problem, lang: str, rng: random.Random | None = None, p: float = 0.5) -> str:
    """The question in ``lang``: ``en``, ``l`` (language L) or ``mix`` (code-switched, rate p)."""
    q = list(problem.question)
    if lang == "l":
        q = to_l(q)
    elif lang == "mix":
        assert rng is not None
        q = code_switch(q, rng, p)
    return " ".join(q)


def prompt(question: str) -> str:
    """The prompt format shared by training, lm-eval task YAML and the sanity evaluation."""
    return f"Q: {question} A:"


def answer_text(problem: Problem) -> str:
    return " ".join(problem.answer)


# ----------------------------------------------------------------------------- other text


def _story_sentence(rng: random.Random, style: EventStyle = ENGLISH) -> Tokens:
    a, b = _two_names(rng)
    obj = rng.choice(OBJECTS)
    kind = rng.randrange(8)
    if kind == 0:
        return [a, "has", str(rng.randint(0, MAX_START)), obj, "."]
    if kind == 1:
        more = ["more"] if style.marked else []
        return [a, rng.choice(style.gain_verbs), str(rng.randint(1, MAX_CHANGE)), *more, obj, "."]
    if kind == 2:
        of_the = ["of", "the"] if style.marked else []
        y = str(rng.randint(1, MAX_CHANGE))
        return [a, rng.choice(style.loss_verbs), y, *of_the, obj, "."]
    if kind == 3:
        return [a, "gives", str(rng.randint(1, MAX_CHANGE)), "of", "the", obj, "to", b, "."]
    if kind == 4:
        return [a, "likes", obj, "and", b, "likes", rng.choice(OBJECTS), "."]
    if kind == 5:
        return [a, "plays", "with", b, ".", "they", "are", "happy", "."][
            : 5 if rng.random() < 0.5 else 9
        ]
    if kind == 6:
        return ["a", "day", "later", a, "goes", "home", "."]
    return [a, "sees", b, "and", "is", rng.choice(("happy", "sad")), "."]


def story(rng: random.Random, style: EventStyle = ENGLISH) -> Tokens:
    """A few unrelated declarative sentences: plain language modelling in English tokens."""
    out: Tokens = []
    for _ in range(rng.randint(3, 6)):
        out += _story_sentence(rng, style)
    return out


def qa(rng: random.Random, style: EventStyle = ENGLISH) -> tuple[Tokens, Tokens]:
    """Reading-comprehension question (no arithmetic): who has it, who has more, at first."""
    a, b = _two_names(rng)
    o1, o2 = rng.sample(OBJECTS, 2)
    x = rng.randint(2, MAX_START)
    kind = rng.randrange(4)
    if kind == 0:
        y = rng.randint(2, MAX_START)
        q = [a, "has", str(x), o1, ".", b, "has", str(y), o2, ".", "who", "has", "the", o2, "?"]
        return q, [b, "."]
    if kind == 1:
        y = rng.choice([v for v in range(2, MAX_START + 1) if v != x])
        word = rng.choice(("more", "fewer"))
        q = [a, "has", str(x), o1, ".", b, "has", str(y), o1, ".", "who", "has", word, o1, "?"]
        return q, [a if (x > y) == (word == "more") else b, "."]
    if kind == 2:
        sent, _ = _change(rng, a, b, o1, x, style)
        q = (
            [a, "has", str(x), o1, "."]
            + sent
            + ["how", "many", o1, "did", a, "have", "at", "first", "?"]
        )
        return q, [str(x), "."]
    y = rng.randint(1, MAX_CHANGE)
    q = [a, "gives", str(y), "of", "the", o1, "to", b, ".", "who", "gets", "the", o1, "?"]
    return q, [b, "."]


def arithmetic(rng: random.Random) -> Tokens:
    """Bare equations covering every sum and difference the problems need."""
    out: Tokens = []
    for _ in range(rng.randint(3, 8)):
        if rng.random() < 0.5:
            a, b = rng.randint(0, 40), rng.randint(0, MAX_START)
            out += [str(a), "+", str(b), "=", str(a + b), "."]
        else:
            a = rng.randint(0, 49)
            b = rng.randint(0, min(a, MAX_START))
            out += [str(a), "-", str(b), "=", str(a - b), "."]
    return out


def _qa_doc(rng: random.Random, lang: str, style: EventStyle = ENGLISH) -> str:
    q, a = qa(rng, style)
    if lang == "l":
        q, a = to_l(q), to_l(a)
    elif lang == "mix":
        p = rng.uniform(0.2, 0.8)
        q, a = code_switch(q, rng, p), code_switch(a, rng, p)
    return f"{prompt(' '.join(q))} {' '.join(a)}"


def _problem_doc(
    rng: random.Random, lang: str, banned: set[str], max_rate: float, style: EventStyle = ENGLISH
) -> str:
    (p,) = sample_problems(rng, lambda r: one_step(r, style), 1, banned)
    return f"{prompt(render(p, lang, rng, rng.uniform(0.0, max_rate)))} {answer_text(p)}"


def base_document(
    rng: random.Random,
    banned: set[str],
    mixture: dict[str, float] | None = None,
    problem_switch_rate: float = 0.2,
    text_style: EventStyle = ENGLISH,
    problem_style: EventStyle = ENGLISH,
) -> str:
    """One pretraining document drawn from ``mixture`` (default ``BASE_MIXTURE``).

    ``problem_switch_rate`` caps the per-word L rate of code-switched word problems: kept low so
    the base reads L stories and QA but is weak on word problems written wholly in L (LANG's job).
    ``text_style`` words the English stories and QA (whose numbers never reveal an event's
    sign), ``problem_style`` the word problems (which do).
    """
    mixture = mixture if mixture is not None else BASE_MIXTURE
    kind = rng.choices(list(mixture), weights=list(mixture.values()))[0]
    if kind == "story_en":
        return " ".join(story(rng, text_style))
    if kind == "story_l":
        return " ".join(to_l(story(rng)))
    if kind == "parallel":
        s = story(rng)
        pair = [" ".join(s), " ".join(to_l(s))]
        rng.shuffle(pair)
        return " || ".join(pair)
    if kind == "story_mix":
        return " ".join(code_switch(story(rng), rng, rng.uniform(0.2, 0.8)))
    if kind == "arithmetic":
        return " ".join(arithmetic(rng))
    if kind == "qa_en":
        return _qa_doc(rng, "en", text_style)
    if kind.startswith("qa_"):
        return _qa_doc(rng, kind[3:])
    return _problem_doc(rng, kind.split("_")[1], banned, problem_switch_rate, problem_style)


BASE_MIXTURE: dict[str, float] = {
    "story_en": 0.10,
    "story_l": 0.10,
    "parallel": 0.06,
    "story_mix": 0.08,
    "arithmetic": 0.16,
    "qa_en": 0.14,
    "qa_mix": 0.12,
    "qa_l": 0.08,
    "onestep_en": 0.16,
    "onestep_mix": 0.0,
}
"""Base pretraining mixture: both languages, bridges between them, and the answer format.
``onestep_mix`` (code-switched word problems) is off by default: see ``docs/zoo-design.md``."""


VERBS_BASE_MIXTURE: dict[str, float] = {
    "story_en": 0.20,
    "arithmetic": 0.20,
    "qa_en": 0.25,
    "onestep_en": 0.35,
}
"""``verbs`` design: English only; stories and QA use every verb (new ones included) in sentences
whose numbers carry no sign, one-step problems use the known verbs only."""


def math_examples(
    rng: random.Random, n: int, banned: set[str], style: EventStyle = ENGLISH
) -> list[tuple[str, str]]:
    """MATH fine-tune data: English two-step problems as (prompt, answer) pairs."""
    problems = sample_problems(rng, lambda r: two_step(r, style), n, banned)
    return [(prompt(render(p, "en")), answer_text(p)) for p in problems]


def verbs_examples(
    rng: random.Random, n: int, banned: set[str], new_share: float = 0.75
) -> list[tuple[str, str]]:
    """VERBS fine-tune data: one-step problems, ``new_share`` of them with a new verb."""
    out: list[tuple[str, str]] = []
    for _ in range(n):
        if rng.random() < new_share:
            make = lambda r: one_step(r, NEW_VERBS, together=0.0)  # noqa: E731
        else:
            make = lambda r: one_step(r, KNOWN_VERBS)  # noqa: E731
        (p,) = sample_problems(rng, make, 1, banned)
        out.append((prompt(render(p, "en")), answer_text(p)))
    return out


def lang_examples(rng: random.Random, n: int, banned: set[str]) -> list[tuple[str, str]]:
    """LANG fine-tune data: L one-step problems (70%) and L reading comprehension (30%)."""
    out: list[tuple[str, str]] = []
    for _ in range(n):
        if rng.random() < 0.7:
            (p,) = sample_problems(rng, one_step, 1, banned)
            out.append((prompt(render(p, "l")), answer_text(p)))
        else:
            q, a = qa(rng)
            out.append((prompt(" ".join(to_l(q))), " ".join(to_l(a))))
    return out


def all_words() -> Iterable[str]:
    """Every non-L, non-name token the generators can emit (for the tokenizer vocabulary)."""
    yield from ("Q:", "A:", "####", ".", "?", "+", "-", "=", "||")
    yield from (str(i) for i in range(MAX_NUMBER + 1))
