"""A candidate recipe -> an :class:`Evaluation`: built by the run's candidate builder (once more
on out-of-memory), scored by its scorer (once more at half the batch on out-of-memory),
released again.

The stage's loop only sees the plain :data:`Evaluate` callable, so it never learns how a
candidate is built or scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from mergekit_evo.search.scoring.oom import build_with_oom_retry, score_with_oom_retry
from mergekit_evo.search.scoring.scorer import OnRung

T = TypeVar("T")

if TYPE_CHECKING:
    from mergekit_evo.candidate.base import CandidateBuilder
    from mergekit_evo.search.scoring.callable_scoring import CallableScorer
    from mergekit_evo.search.scoring.scorer import Scorer


@dataclass
class Evaluation:
    """What scoring a candidate gives the loop."""

    fitness: float  # the scalar the search maximises (weighted task mean)
    values: list[float]  # the study's objective values (one, or one per task)
    per_task: dict[str, Any] = field(default_factory=dict)
    model_dir: Path | None = None  # the merged folder, if still on disk
    questions: int | None = None  # fitness questions scored (None: a Python fitness)


class Evaluate(Protocol):
    """(recipe, trial number, workdir) -> Evaluation; raise to fail the trial.  ``on_rung``
    hears the fitness after each multi-fidelity rung (it raises to stop the candidate)."""

    def __call__(
        self,
        recipe: dict[str, Any],
        number: int,
        workdir: Path,
        *,
        on_rung: OnRung | None = None,
    ) -> Evaluation: ...


@dataclass
class CandidateEvaluator:
    """The search's :data:`Evaluate`: build the recipe, score it, release the candidate."""

    builder: CandidateBuilder
    scorer: Scorer | CallableScorer
    log: Callable[[str], None] = print

    def __call__(
        self,
        recipe: dict[str, Any],
        number: int,
        workdir: Path,
        *,
        on_rung: OnRung | None = None,
    ) -> Evaluation:
        s, path = self._with_candidate(
            recipe,
            workdir,
            lambda cand, bs: self.scorer.score_candidate(
                cand.model, cand.tokenizer, batch_size=bs, on_rung=on_rung
            ),
        )
        return Evaluation(
            fitness=s.fitness,
            values=s.values,
            per_task=s.per_task,
            model_dir=path,
            questions=s.questions,
        )

    def confirm(self, recipe: dict[str, Any], workdir: Path) -> tuple[float, int]:
        """The recipe's accuracy on the confirm slice, and how many questions that is."""
        score, _ = self._with_candidate(
            recipe,
            workdir,
            lambda cand, bs: self.scorer.score_confirm(cand.model, cand.tokenizer, batch_size=bs),
        )
        return score

    def _with_candidate(
        self, recipe: dict[str, Any], workdir: Path, score: Callable[[Any, int], T]
    ) -> tuple[T, Path | None]:
        """Build the candidate, score it (once more at half the batch on out-of-memory),
        release it; the score and the folder it was built in."""
        cand = build_with_oom_retry(lambda: self.builder.build(recipe, workdir), self.log)
        try:
            out = score_with_oom_retry(
                lambda bs: score(cand, bs), self.scorer.cfg.batch_size, self.log
            )
        finally:
            self.builder.release(cand)
        return out, cand.path
