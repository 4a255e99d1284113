"""Scoring through the fitness package: a config's fitness block -> one evaluator, reused.

Kept separate from the loop so the loop only sees a plain ``evaluate`` callable.
"""

from __future__ import annotations

from typing import Any

from mergekit_evo.config import FitnessConfig


class Scorer:
    """One :class:`mergekit_evo.fitness.FitnessEvaluator` (tasks built once)."""

    def __init__(self, cfg: FitnessConfig, device: str, report: bool = False) -> None:
        from mergekit_evo.fitness import FitnessEvaluator, FitnessSpec, TaskSpec

        self.cfg = cfg
        spec = FitnessSpec(
            tasks=[
                TaskSpec(
                    name=t.name,
                    weight=t.weight,
                    metric=t.metric,
                    require_language=t.require_language,
                )
                for t in cfg.tasks
            ],
            limit=cfg.limit,
            num_fewshot=cfg.num_fewshot,
            batch_size=cfg.batch_size,
            device=device,
            max_gen_toks=cfg.max_gen_toks,
            seed=cfg.seed,
            engine=cfg.engine,
            allow_report_split=report or cfg.allow_report_split,
            purpose="report" if report else "fitness",
            include_path=list(cfg.include_path),
        )
        self.evaluator = FitnessEvaluator(spec)

    @property
    def n_objectives(self) -> int:
        return len(self.cfg.tasks) if self.cfg.objectives == "per_task" else 1

    def score(
        self, model: Any, tokenizer: Any, batch_size: int | None = None
    ) -> tuple[float, list[float], dict[str, Any]]:
        """(weighted fitness, objective values, per-task scored metric); ``batch_size``
        overrides the config's for this call (the out-of-memory retry, search/scoring/oom.py)."""
        res = self.evaluator.score(model, tokenizer, batch_size=batch_size)
        per_task = {name: float(res.per_task[name][key]) for name, key in res.metrics.items()}
        if self.cfg.objectives == "per_task":
            values = [per_task[t.name] for t in self.cfg.tasks]
        else:
            values = [float(res.score)]
        return float(res.score), values, per_task
