"""Zoo designs: which skills the two sources get and which target needs both.

Why two designs (measurements in ``docs/zoo-design.md``):

- ``lang``, the paper's shape: MATH (English two-step problems) + LANG (the invented language L);
  target: two-step problems in L. It needs a base that shares representations across English and
  L; at 14M parameters MATH alone already transfers to L (39.5%), at 458k nothing transfers and
  the merge gain is a few points.
- ``verbs`` (default): MATH (two-step problems with known verbs) + VERBS (one-step problems with
  8 verbs whose meaning the base never learnt); target: two-step problems whose events use only
  the new verbs. The base reads the new verbs in sentences whose numbers carry no sign. VERBS is
  a vocabulary adaptation: its input embeddings train at the full learning rate, the rest at 3%
  of it, so its knowledge sits mostly in the new verbs' embedding rows, which MATH never
  touches. Fully fine-tuned at 458k parameters, VERBS rewrote the circuits MATH relies on, and
  no merge beat MATH alone (docs/zoo-design.md).
- ``paths`` (issue 13): ``verbs`` with MATH fine-tuned in its transformer layers only (input
  embeddings, final norm and head frozen at the base's). A DFS model takes embeddings, norm and
  head from model A, so with A = VERBS and a path through MATH's layers it reads the new verbs
  and chains the steps; with MATH's own embeddings and head (``verbs``), no path can read them.
  Every design tried for a layer path that no weight merge reaches is in docs/zoo-design.md.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass

from mergekit_evo.zoo import corpus

Examples = Callable[[random.Random, int, set[str]], list[tuple[str, str]]]
ProblemMaker = Callable[[random.Random], corpus.Problem]


@dataclass(frozen=True)
class Split:
    """One evaluation split: lm-eval task name, problem generator, language and description."""

    task: str
    make: ProblemMaker
    lang: str
    description: str
    size_field: str  # ZooSize field holding its size ("search_n", "heldout_n", "skill_n")


@dataclass(frozen=True)
class Source:
    """A fine-tune of the base: its data generator and what it learns."""

    make: Examples
    description: str
    body_lr_scale: float = 1.0  # see train.finetune: < 1 puts the change into the embeddings
    frozen: tuple[str, ...] = ()  # train.FREEZABLE parts kept at the base's values


@dataclass(frozen=True)
class ZooDesign:
    """Everything that differs between designs; the training pipeline is shared."""

    name: str
    target: str
    base_mixture: dict[str, float]
    text_style: corpus.EventStyle
    problem_style: corpus.EventStyle
    sources: dict[str, Source]
    splits: dict[str, Split]  # target_search and target_heldout first: they share one draw


def _target(design: str, make: ProblemMaker, lang: str, what: str) -> dict[str, Split]:
    return {
        "target_search": Split("zoo_target_search", make, lang, f"{what} (search fitness)",
                               "search_n"),
        "target_heldout": Split("zoo_target_heldout", make, lang, f"{what} (held-out report)",
                                "heldout_n"),
    }  # fmt: skip


LANG = ZooDesign(
    name="lang",
    target="two-step word problems in L (needs MATH's chaining and LANG's reading of L)",
    base_mixture=corpus.BASE_MIXTURE,
    text_style=corpus.ENGLISH,
    problem_style=corpus.ENGLISH,
    sources={
        "math": Source(corpus.math_examples, "English two-step word problems"),
        "lang": Source(
            corpus.lang_examples, "L one-step word problems and L reading comprehension"
        ),
    },
    splits=_target("lang", corpus.two_step, "l", "two-step problems in L")
    | {
        "math_heldout": Split(
            "zoo_math_heldout",
            corpus.two_step,
            "en",
            "two-step problems in English (MATH skill)",
            "skill_n",
        ),
        "lang_heldout": Split(
            "zoo_lang_heldout",
            corpus.one_step,
            "l",
            "one-step problems in L (LANG skill)",
            "skill_n",
        ),
    },  # fmt: skip
)


def _new_two_step(rng: random.Random) -> corpus.Problem:
    return corpus.two_step(rng, corpus.NEW_VERBS)


def _known_two_step(rng: random.Random) -> corpus.Problem:
    return corpus.two_step(rng, corpus.KNOWN_VERBS)


def _new_one_step(rng: random.Random) -> corpus.Problem:
    return corpus.one_step(rng, corpus.NEW_VERBS, together=0.0)


def _math_known(rng: random.Random, n: int, banned: set[str]) -> list[tuple[str, str]]:
    return corpus.math_examples(rng, n, banned, corpus.KNOWN_VERBS)


VERBS = ZooDesign(
    name="verbs",
    target="two-step word problems whose events use new verbs (needs MATH's chaining and "
    "VERBS' meaning of the new verbs)",
    base_mixture=corpus.VERBS_BASE_MIXTURE,
    text_style=corpus.ANY_VERBS,
    problem_style=corpus.KNOWN_VERBS,
    sources={
        "math": Source(_math_known, "two-step word problems with known verbs"),
        "verbs": Source(
            corpus.verbs_examples,
            "one-step word problems, 75% with new verbs (embeddings at the full learning rate, "
            "the other weights at 3% of it)",
            body_lr_scale=0.03,
        ),
    },
    splits=_target("verbs", _new_two_step, "en", "two-step problems with new verbs")
    | {
        "math_heldout": Split(
            "zoo_math_heldout",
            _known_two_step,
            "en",
            "two-step problems with known verbs (MATH skill)",
            "skill_n",
        ),
        "verbs_heldout": Split(
            "zoo_verbs_heldout",
            _new_one_step,
            "en",
            "one-step problems with new verbs (VERBS skill)",
            "skill_n",
        ),
    },  # fmt: skip
)

PATHS = dataclasses.replace(
    VERBS,
    name="paths",
    target=VERBS.target + "; MATH's skill sits in its transformer layers, VERBS' in its "
    "embedding rows",
    sources={
        "math": Source(
            _math_known,
            "two-step word problems with known verbs (transformer layers only: input "
            "embeddings, final norm and head frozen)",
            frozen=("embeddings", "head"),
        ),
        "verbs": VERBS.sources["verbs"],
    },
)

DESIGNS: dict[str, ZooDesign] = {d.name: d for d in (VERBS, LANG, PATHS)}
DEFAULT_DESIGN = "verbs"
