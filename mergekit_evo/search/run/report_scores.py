"""Report-split scores of each source model and of the champion, after the search.

A separate split from the one the search optimised, so the reported gain is not selection noise.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mergekit_evo.search.run.baselines import score_model

if TYPE_CHECKING:
    from mergekit_evo.candidate.base import CandidateBuilder
    from mergekit_evo.search.scoring.scorer import Scorer


def report_scores(
    scorer: Scorer,
    builder: CandidateBuilder,
    models: dict[str, str],
    recipe: dict[str, Any],
    champion_dir: Path,
    workdir: Path,
) -> dict[str, Any]:
    """``{"sources": ..., "champion": ..., "improvement": ...}`` for metrics.json.

    The champion is read from ``champion_dir`` if the search kept it, else built from
    ``recipe`` in ``workdir`` (removed afterwards).
    """
    from mergekit_evo.report.metrics import improvement

    out: dict[str, Any] = {"sources": {}}
    for name, path in models.items():
        score, _, per_task = score_model(builder, scorer, path)
        out["sources"][name] = {"score": score, "per_task": per_task}
    if champion_dir.exists():
        cand = builder.load(str(champion_dir))
    else:
        cand = builder.build(recipe, workdir)
    try:
        score, _, per_task = scorer.score(cand.model, cand.tokenizer)
    finally:
        builder.release(cand)
        shutil.rmtree(workdir, ignore_errors=True)
    out["champion"] = {"score": score, "per_task": per_task}
    best_src = max((v["score"] for v in out["sources"].values()), default=None)
    out["improvement"] = improvement(score, best_src)
    return out


def rebuilt_fitness(
    scorer: Scorer, builder: CandidateBuilder, recipe: dict[str, Any], workdir: Path
) -> float:
    """Search-split fitness of the champion as ``mergekit-yaml best.yml --random-seed`` builds it.

    An in-memory DARE merge draws its masks on the GPU, not as a CPU ``mergekit-yaml`` run does,
    so the model ``best.yml`` rebuilds is a sibling of the one the search scored: this is its
    score, reported beside the search's (builders whose ``exact_for`` is False only).
    """
    disk = getattr(builder, "disk", builder)  # the resident builder keeps a disk builder
    out = disk.merge(recipe, workdir / "rebuilt")
    try:
        return score_model(disk, scorer, str(out))[0]
    finally:
        shutil.rmtree(workdir / "rebuilt", ignore_errors=True)
