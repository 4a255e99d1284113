"""What a fitness measures: tasks, weights, metric keys and lm-eval settings (pydantic, JSON-able).

Field checks live here (their errors name the field, the value and what is valid); checks that
need lm-eval (does the task exist, does it produce the metric) happen in ``FitnessEvaluator``.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mergekit_evo.fitness.errors import FitnessError
from mergekit_evo.fitness.language import LANGUAGES
from mergekit_evo.fitness.registry import SHIPPED_TASKS, is_report_split

log = logging.getLogger(__name__)


class TaskSpec(BaseModel):
    """One task of a fitness and how it counts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="lm-eval task name, e.g. evo_gsm8k_search")
    weight: float = Field(default=1.0, ge=0.0, description="weight in the weighted mean")
    metric: str | None = Field(
        default=None,
        description="lm-eval result key 'metric,filter', e.g. 'exact_match,flexible-extract'; "
        "None: the shipped task's default ('exact_match,numeric' / 'loglik,none')",
    )
    require_language: str | None = Field(
        default=None,
        description="count an answer only if correct AND the response is in this language "
        "(the paper's MGSM-JA rule), e.g. 'ja'",
    )

    @field_validator("metric")
    @classmethod
    def _metric_form(cls, value: str | None) -> str | None:
        if value is not None and (value.count(",") != 1 or "" in value.split(",")):
            raise ValueError(
                f"metric={value!r} is not in lm-eval's 'metric,filter' form "
                "(e.g. 'exact_match,flexible-extract', 'exact_match,numeric', 'acc,none')"
            )
        return value

    @field_validator("require_language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is not None and value not in LANGUAGES:
            raise ValueError(
                f"require_language={value!r} is not supported; valid: {', '.join(LANGUAGES)}"
            )
        return value

    @property
    def resolved_metric(self) -> str | None:
        """The metric key to score: the given one, else the shipped task's default."""
        if self.metric is not None:
            return self.metric
        shipped = SHIPPED_TASKS.get(self.name)
        return shipped.default_metric if shipped else None


class FitnessSpec(BaseModel):
    """A fitness: weighted mean of one metric per task, under one set of lm-eval settings."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[TaskSpec] = Field(min_length=1)
    limit: int | float | None = Field(
        default=None, gt=0, description="docs per task (int) or fraction (<1); None: all"
    )
    num_fewshot: int | None = Field(default=None, ge=0, description="None: the task's default")
    batch_size: int = Field(default=8, ge=1)
    device: str | None = Field(default="cpu", description="torch device, e.g. cpu, cuda:0")
    max_gen_toks: int | None = Field(default=None, ge=1, description="None: lm-eval's default")
    seed: int = 0
    engine: Literal["auto", "hf", "mergekit_evo"] = Field(
        default="auto",
        description="generation backend: 'mergekit_evo' (static cache, CUDA graphs, shared "
        "prefix), 'hf' (lm-eval's own HF generate), 'auto' (mergekit_evo on CUDA, hf on CPU)",
    )
    include_path: list[str] = Field(
        default_factory=list,
        description="extra lm-eval task folders (e.g. a zoo's tasks/), searched before lm-eval's",
    )
    allow_report_split: bool = Field(
        default=False,
        description="allow report (test/held-out) tasks; a search must not optimise them",
    )
    purpose: Literal["fitness", "report"] = Field(
        default="fitness",
        description="report: scores that are only reported (never optimised), where report "
        "splits are the point; no split check, no warning",
    )

    @field_validator("tasks", mode="before")
    @classmethod
    def _names_to_specs(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("limit")
    @classmethod
    def _limit(cls, value: int | float | None) -> int | float | None:
        if isinstance(value, float) and value >= 1:
            if not value.is_integer():
                raise ValueError(
                    f"limit={value!r}: a float limit is a fraction in (0, 1); "
                    "a count must be a whole number"
                )
            return int(value)
        return value

    @model_validator(mode="after")
    def _unique_and_weighted(self) -> FitnessSpec:
        names = [t.name for t in self.tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tasks: each task may appear once; repeated: {dupes}")
        if sum(t.weight for t in self.tasks) <= 0:
            raise ValueError("tasks: the weights must not all be 0")
        return self

    def uses_engine(self) -> bool:
        """Whether scoring generates with :class:`mergekit_evo.fitness.fast_lm.EngineLM`."""
        if self.engine == "auto":
            return str(self.device or "cpu").startswith("cuda")
        return self.engine == "mergekit_evo"

    def check_splits(self) -> None:
        """Refuse report-split tasks unless ``allow_report_split`` (then only warn)."""
        report = [t.name for t in self.tasks if is_report_split(t.name)]
        if not report or self.purpose == "report":
            return
        if not self.allow_report_split:
            searchable = sorted(n for n, t in SHIPPED_TASKS.items() if t.split == "search")
            raise FitnessError(
                f"tasks {report} score a report split (test or held-out); optimising on them "
                "would leak the numbers you report. Search on a search split instead "
                f"({', '.join(searchable[:6])}, ...) or set allow_report_split=True "
                "(mergekit-evo eval, which only reports, always does)."
            )
        log.warning(
            "the search's fitness optimises report-split tasks %s (allow_report_split=True): "
            "their scores are no longer held out",
            report,
        )
