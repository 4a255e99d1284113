"""Scoring through the fitness package: a config's fitness block -> one evaluator, reused.

Kept separate from the loop so the loop only sees a plain ``evaluate`` callable.  A search's
scorer also knows which questions are which (:class:`~mergekit_evo.fitness.slices.QuestionPlan`):
the fitness questions, scored rung by rung when ``fitness.fidelity`` is set, and the confirm
slice after them (``confirm``), which no candidate's fitness ever includes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mergekit_evo.config import ConfigError, ConfirmConfig, FitnessConfig

#: called after each rung but the last: (questions scored so far, fitness over them)
OnRung = Callable[[int, float], None]


@dataclass
class Scored:
    """A candidate's score over the fitness questions it was scored on."""

    fitness: float
    values: list[float]
    per_task: dict[str, Any] = field(default_factory=dict)
    questions: int | None = None  # questions scored (None: a Python fitness, not counted)


class Scorer:
    """One :class:`mergekit_evo.fitness.FitnessEvaluator` (tasks built once)."""

    def __init__(
        self,
        cfg: FitnessConfig,
        device: str,
        report: bool = False,
        confirm: ConfirmConfig | None = None,
    ) -> None:
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
        self.plan = self._plan(cfg, confirm) if not report else None

    def _plan(self, cfg: FitnessConfig, confirm: ConfirmConfig | None) -> Any:
        """Which questions are fitness, rungs and confirm slice; errors name the config field."""
        from mergekit_evo.fitness.errors import FitnessError
        from mergekit_evo.fitness.slices import QuestionPlan

        rungs = cfg.fidelity.rungs if cfg.fidelity else None
        n_confirm = confirm.questions if confirm is not None else 0
        if rungs:
            try:
                self.evaluator.check_sliceable("fitness.fidelity")
            except FitnessError as err:
                raise ConfigError([("fitness.fidelity", str(err))]) from None
        if n_confirm != 0:
            try:
                self.evaluator.check_sliceable("a confirm slice")
            except FitnessError as err:
                if n_confirm is not None:  # asked for: say why not
                    raise ConfigError([("confirm.questions", str(err))]) from None
                n_confirm = 0  # left to us: no confirm step for such metrics
        try:
            return QuestionPlan.make(self.evaluator.sizes(), cfg.limit, rungs, n_confirm)
        except ValueError as err:
            raise ConfigError([("confirm.questions", str(err))]) from None

    @property
    def n_confirm(self) -> int:
        """Confirm questions per candidate (0: no confirm step)."""
        return self.plan.n_confirm if self.plan is not None else 0

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
        return float(res.score), self._values(float(res.score), per_task), per_task

    def _values(self, fitness: float, per_task: dict[str, float]) -> list[float]:
        if self.cfg.objectives == "per_task":
            return [per_task[t.name] for t in self.cfg.tasks]
        return [fitness]

    def score_candidate(
        self,
        model: Any,
        tokenizer: Any,
        batch_size: int | None = None,
        on_rung: OnRung | None = None,
    ) -> Scored:
        """A candidate's fitness; with ``fitness.fidelity``, rung by rung (each question once),
        calling ``on_rung`` after every rung but the last so the search can stop it there."""
        from mergekit_evo.fitness.slices import Tally

        if self.plan is None or len(self.plan.rungs) < 2:
            fitness, values, per_task = self.score(model, tokenizer, batch_size)
            n = self.plan.n_fitness if self.plan is not None else None
            return Scored(fitness, values, per_task, n)
        tally = Tally({t.name: t.weight for t in self.cfg.tasks})
        last = len(self.plan.rungs) - 1
        for k, rung in enumerate(self.plan.rungs):
            res = self.evaluator.score(model, tokenizer, batch_size=batch_size, docs=rung)
            means = {name: float(res.per_task[name][res.metrics[name]]) for name in res.counts}
            tally.add(means, res.counts)
            if k < last and on_rung is not None:
                on_rung(tally.questions, tally.fitness())
        per_task = tally.per_task()
        fitness = tally.fitness()
        return Scored(fitness, self._values(fitness, per_task), per_task, tally.questions)

    def score_confirm(
        self, model: Any, tokenizer: Any, batch_size: int | None = None
    ) -> tuple[float, int]:
        """(accuracy over the confirm slice, its questions): never part of any fitness."""
        assert self.plan is not None and self.n_confirm > 0, "no confirm slice"
        res = self.evaluator.score(model, tokenizer, batch_size=batch_size, docs=self.plan.confirm)
        return float(res.score), sum(res.counts.values())
