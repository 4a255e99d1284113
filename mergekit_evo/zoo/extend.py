"""Grow a zoo's search split without retraining it (issue 17: fitness slices and a confirm set).

A search that scores several hundred questions per candidate, in slices, and keeps a confirm
slice apart needs far more search questions than the 200 a zoo was first built with. Redrawing
the splits would change the held-out questions and the training data (both are drawn around
them), so the extension is a second, separate draw appended to ``target_search.jsonl``:

- the first ``n`` lines stay as they are, so a fitness over the first ``limit`` questions scores
  exactly what it scored before;
- a new question repeats no question of any split (search, held-out, skill splits), and no
  question a fine-tune was trained on (regenerated from the zoo's seed, as the build drew them),
  so the held-out split stays held out and the search split stays unseen.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from mergekit_evo.zoo import corpus
from mergekit_evo.zoo.designs import DESIGNS
from mergekit_evo.zoo.sizes import ZooSize

#: What ``zoo build`` grows the search split to: room for fitness slices and a confirm slice.
DEFAULT_SEARCH_QUESTIONS = 1000

_SPLIT = "target_search"


def _rng(seed: int, purpose: str) -> random.Random:
    return random.Random(f"{seed}:{purpose}")


def _training_questions(seed: int, preset: ZooSize, design_name: str, banned: set[str]) -> set[str]:
    """The question text of every fine-tune example, drawn exactly as the build drew it."""
    design = DESIGNS[design_name]
    seen: set[str] = set()
    for name, source in design.sources.items():
        for prompt, _ in source.make(_rng(seed, f"{name}-data"), preset.ft_examples, set(banned)):
            seen.add(prompt.removeprefix("Q: ").removesuffix(" A:"))
    return seen


def extend_search_split(zoo_dir: str | Path, total: int = DEFAULT_SEARCH_QUESTIONS) -> int:
    """Append questions to ``ZOO/data/target_search.jsonl`` until it holds ``total``.

    Returns how many were added (0 when the split already holds ``total`` or more). Raises
    ``ValueError`` when the zoo's files are not what its seed gives (a hand-edited split).
    """
    from mergekit_evo.zoo.build import _make_splits

    zoo = Path(zoo_dir)
    manifest = json.loads((zoo / "zoo.json").read_text(encoding="utf-8"))
    info = manifest["splits"][_SPLIT]
    data = zoo / info["data"]
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line]
    if len(rows) >= total:
        return 0
    design = DESIGNS[manifest["design"]]
    preset = ZooSize(**manifest["size_config"])
    first = preset.search_n  # what the build drew with the held-out split
    drawn, banned = _make_splits(manifest["seed"], preset, design)
    questions, _ = drawn[_SPLIT]
    if [r["question"] for r in rows[:first]] != questions:
        raise ValueError(
            f"{data}: its first {first} questions are not the ones seed {manifest['seed']} "
            "draws; extend only a zoo that `mergekit-evo zoo build` wrote"
        )
    split_lang = design.splits[_SPLIT].lang
    taken = banned | _training_questions(manifest["seed"], preset, design.name, banned)
    rng = _rng(manifest["seed"], "search-extension")
    # the draw is a continuation: questions already appended by an earlier extension are
    # drawn again (same stream) and skipped, so extending to 1000 then 1200 equals 1200 at once
    already = len(rows) - first
    problems = corpus.sample_problems(
        rng, design.splits[_SPLIT].make, already + total - len(rows), taken, unique=True
    )
    extra = problems[already:]
    with open(data, "a", encoding="utf-8") as f:
        for p in extra:
            f.write(
                json.dumps(
                    {"question": corpus.render(p, split_lang), "answer": corpus.answer_text(p)},
                    ensure_ascii=False,
                )
                + "\n"
            )
    info["n"] = total
    manifest["search_extension"] = {
        "drawn_with_build": first,
        "total": total,
        "how": "appended from the seed's 'search-extension' stream; no question of any split "
        "nor of any fine-tune's training data (mergekit_evo/zoo/extend.py)",
    }
    (zoo / "zoo.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return len(extra)
