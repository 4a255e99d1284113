"""Source-model scores: the search-split baselines a champion is compared with.

Kept in the first stage's study (user attr ``baseline_fitness``), so a resumed run or another
process reads them instead of scoring the sources again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from mergekit_evo.candidate.base import CandidateBuilder
    from mergekit_evo.search.scoring.scorer import Scorer
    from mergekit_evo.search.stage.context import Log


def score_model(
    builder: CandidateBuilder, scorer: Scorer, path: str
) -> tuple[float, list[float], dict[str, Any]]:
    """Load an existing model folder the way candidates are loaded, and score it (out of GPU
    memory: once more at half the batch, as for candidates)."""
    from mergekit_evo.search.scoring.oom import score_with_oom_retry

    cand = builder.load(path)
    try:
        return score_with_oom_retry(
            lambda bs: scorer.score(cand.model, cand.tokenizer, batch_size=bs),
            scorer.cfg.batch_size,
        )
    finally:
        builder.release(cand)


def baselines(
    meta: optuna.Study,
    models: dict[str, str],
    builder: CandidateBuilder | None,
    scorer: Scorer | None,
    *,
    score: bool,
    log: Log,
) -> dict[str, float]:
    """Fitness of each source model; ``score`` False only reads what the study holds."""
    done: dict[str, float] = dict(meta.user_attrs.get("baseline_fitness", {}))
    if not score:
        return done
    assert builder is not None and scorer is not None
    for name, path in models.items():
        if name in done:
            continue
        t0 = time.monotonic()
        fitness, _, _ = score_model(builder, scorer, path)
        done[name] = fitness
        meta.set_user_attr("baseline_fitness", done)
        log(f"baseline {name}: {fitness:.4f}  ({time.monotonic() - t0:.1f} s)")
    return done
