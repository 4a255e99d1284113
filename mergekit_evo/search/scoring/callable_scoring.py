"""A fitness of the user's own: a Python callable ``(model, tokenizer) -> float | dict``.

For what lm-eval tasks cannot express (a private benchmark, a reward model, a latency
penalty), ``run_search(cfg, out, fitness_fn=f)`` or ``fitness.function: "pkg.mod:f"`` scores
every candidate with ``f`` instead; trials, resume and outputs are the same.  A float is the
fitness; a dict is several numbers: ``fitness.tasks`` then names the keys (with weights, and
one objective each under ``objectives: per_task``), else the fitness is their mean.
:class:`CallableScorer` has :class:`mergekit_evo.search.scoring.scorer.Scorer`'s interface.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from typing import Any

from mergekit_evo.config import ConfigError, ConfirmConfig, FitnessConfig

FitnessFn = Callable[[Any, Any], Any]


def load_function(spec: str, field: str = "fitness.function") -> FitnessFn:
    """Import ``package.module:attr``; raises :class:`ConfigError` naming the field."""
    module, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError([(field, f"cannot import {spec!r}: {e}")]) from None
    if not callable(obj):
        raise ConfigError([(field, f"{spec!r} is a {type(obj).__name__}, not a callable")])
    return obj


def function_name(fn: FitnessFn) -> str:
    """``module:qualname`` of a callable (what config.yml records, and resume compares)."""
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


class CallableScorer:
    """Scores a candidate with a Python callable."""

    def __init__(self, cfg: FitnessConfig, fn: FitnessFn | None = None) -> None:
        if cfg.objectives == "per_task" and not cfg.tasks:
            raise ConfigError(
                [("fitness.tasks", "objectives: per_task needs the function's dict keys here")]
            )
        assert fn is not None or cfg.function is not None
        self.cfg = cfg
        self.fn = fn if fn is not None else load_function(str(cfg.function))

    @property
    def n_objectives(self) -> int:
        return len(self.cfg.tasks) if self.cfg.objectives == "per_task" else 1

    def score(
        self, model: Any, tokenizer: Any, batch_size: int | None = None
    ) -> tuple[float, list[float], dict[str, Any]]:
        """(fitness, objective values, the numbers by name); a bad result raises (fails the
        trial, not the search). ``batch_size`` is ignored: the callable batches itself."""
        import torch

        with torch.no_grad():
            out = self.fn(model, tokenizer)
        name = function_name(self.fn)
        if isinstance(out, Mapping):
            per = {str(k): _number(v, f"{name} key {k!r}") for k, v in out.items()}
            if self.cfg.tasks:
                missing = [t.name for t in self.cfg.tasks if t.name not in per]
                if missing:
                    raise ValueError(f"{name} returned no {missing}; it returned {sorted(per)}")
                total = sum(t.weight for t in self.cfg.tasks)
                fitness = sum(t.weight * per[t.name] for t in self.cfg.tasks) / total
            elif per:
                fitness = sum(per.values()) / len(per)
            else:
                raise ValueError(f"{name} returned an empty dict")
        else:
            fitness = _number(out, name)
            per = {"fitness": fitness}
        if self.cfg.objectives == "per_task":
            values = [per[t.name] for t in self.cfg.tasks]
        else:
            values = [fitness]
        return fitness, values, per

    n_confirm = 0  # a Python fitness has no questions to slice: no confirm step

    def score_candidate(
        self, model: Any, tokenizer: Any, batch_size: int | None = None, on_rung: Any = None
    ) -> Any:
        """One call of the function (no rungs: it is not a set of questions)."""
        from mergekit_evo.search.scoring.scorer import Scored

        fitness, values, per = self.score(model, tokenizer, batch_size)
        return Scored(fitness, values, per, None)


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__float__"):
        raise TypeError(f"{what} returned {type(v).__name__} {v!r}; expected a number")
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"{what} returned {f}; expected a finite number")
    return f


def make_scorer(
    cfg: FitnessConfig,
    device: str,
    report: bool = False,
    fn: FitnessFn | None = None,
    confirm: ConfirmConfig | None = None,
) -> Any:
    """The scorer a fitness block asks for: the callable's, or lm-eval's (``Scorer``);
    ``confirm``: the search's confirm slice (the fitness scorer only)."""
    if fn is not None or cfg.function is not None:
        if cfg.fidelity is not None:
            raise ConfigError(
                [("fitness.fidelity", "needs lm-eval tasks (questions to slice), not a function")]
            )
        return CallableScorer(cfg, fn)
    from mergekit_evo.search.scoring.scorer import Scorer

    return Scorer(cfg, device, report=report, confirm=confirm)
