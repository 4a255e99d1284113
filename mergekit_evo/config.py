"""The search config (``SearchConfig``): one YAML file, validated by pydantic like MergeKit's own.

Everything a search needs is here - source models, the search space (PS, DFS or PS+DFS), the
fitness, the optimiser, the budget and the storage - so that a run directory plus this file
fully describes a search and rerunning the same command resumes it.  Validation happens in two
steps, both before any weight is read: here pydantic checks each field on its own (and every
number is finite), then :mod:`mergekit_evo.preflight` checks what needs the model folders
(config.json, weight headers, tokenizers, layer counts, MergeKit's method registry).  Every
error names the field path, the value and what would be valid (:class:`ConfigError`).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)


class ConfigError(ValueError):
    """An invalid search config; ``errors`` holds ``(field path, message)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        # one line per error, whatever a key or value holds (a YAML key may contain "\n")
        self.errors = [(_one_line(path), _one_line(msg)) for path, msg in errors]
        errors = self.errors
        lines = [f"{path}: {msg}" for path, msg in errors]
        if len(lines) == 1:  # one problem, one line
            super().__init__(f"invalid search config: {lines[0]}")
        else:
            super().__init__("invalid search config:\n  " + "\n  ".join(lines))


def _one_line(text: str) -> str:
    return text if text.isprintable() else repr(text)[1:-1]


#: the largest count a config may hold (JSON numbers stay exact below 2**53)
_MAX_INT = 2**53
#: seeds are below this: numpy (Optuna's samplers, transformers.set_seed) takes nothing larger
_SEED_END = 2**32


def _as_int(v: Any) -> Any:
    """A whole number however YAML or JSON spelled it: ``100``, ``100.0``, ``"100"``, ``1e3``
    (YAML 1.1 reads that as a string); never ``true``/``false``."""
    if isinstance(v, bool):
        raise ValueError("expected a whole number, not true/false")
    if isinstance(v, str):
        text = v.strip().replace("_", "")
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"expected a whole number, got {v!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"{v!r} is not a finite number; use a whole number")
        if not number.is_integer():
            raise ValueError(f"expected a whole number, got {v!r}")
        v = int(text) if re.fullmatch(r"[+-]?\d+", text) else int(number)
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)
    if isinstance(v, int) and abs(v) > _MAX_INT:
        raise ValueError(f"{v} is too large for a count (at most 2**53)")
    return v


def _as_float(v: Any) -> Any:
    """A real number, also when written as a string (``"1e-3"``); never ``true``/``false``."""
    if isinstance(v, bool):
        raise ValueError("expected a number, not true/false")
    return v


def _as_number(v: Any) -> Any:
    """A count (``int``) when whole, else a real number: ``limit: "5"`` is 5, ``"0.5"`` 0.5."""
    if isinstance(v, bool):
        raise ValueError("expected a number, not true/false")
    if isinstance(v, str):
        try:
            v = float(v.strip().replace("_", ""))
        except ValueError:
            raise ValueError(f"expected a number, got {v!r}") from None
    if isinstance(v, float) and math.isfinite(v) and v.is_integer() and abs(v) <= _MAX_INT:
        return int(v)
    return v


Int = Annotated[int, BeforeValidator(_as_int)]
Float = Annotated[float, BeforeValidator(_as_float)]
Number = Annotated[int | float, BeforeValidator(_as_number)]
#: a non-empty string (a name, a path, a key)
Text = Annotated[str, Field(min_length=1)]


def _no_repeats(v: list[str] | None) -> list[str] | None:
    """Each item once (a repeated filter or parameter would be two coordinates of one name)."""
    if v is not None:
        dupes = sorted({x for x in v if v.count(x) > 1})
        if dupes:
            raise ValueError(f"each item may appear once; repeated: {dupes}")
    return v


class _Strict(BaseModel):
    # allow_inf_nan: NaN and infinity are refused in every float field, however spelled
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Bounds = tuple[Float, Float]
#: the dtypes MergeKit's recipes accept (mergekit.common.dtype_from_name)
MERGEKIT_DTYPES = ("float32", "float16", "bfloat16", "float64", "int64")
#: the most repetitions of the layer layout a DFS genome may have (T = M * r slots)
MAX_REPEATS = 64


class TaskConfig(_Strict):
    """One fitness task: lm-eval task name, weight in the weighted mean, metric key."""

    name: Text
    weight: Float = 1.0
    metric: Text | None = None  # lm-eval "metric,filter"; None: the shipped task's default
    require_language: Text | None = None

    @field_validator("weight")
    @classmethod
    def _positive(cls, v: float) -> float:
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"weight must be a finite number > 0, got {v!r}")
        return v


class FidelityConfig(_Strict):
    """Multi-fidelity scoring: a candidate is scored on growing slices of its fitness questions
    and stopped (an Optuna PRUNED trial) once it cannot plausibly beat the stage's best.

    ``rungs``: fractions of the fitness questions scored before each check, increasing, ending
    at 1.0. ``z``: how sure the stop must be, in standard deviations of the candidate's
    accuracy so far (the Wilson interval's upper end must fall below the best complete
    trial's fitness); larger stops fewer candidates.
    """

    rungs: list[Float] = Field([0.25, 0.5, 1.0], min_length=2)
    z: Float = Field(1.0, gt=0)

    @field_validator("rungs")
    @classmethod
    def _rungs(cls, v: list[float]) -> list[float]:
        pairs = zip(v[:-1], v[1:], strict=True)
        if any(not 0 < f <= 1 for f in v) or any(a >= b for a, b in pairs):
            raise ValueError(f"rungs must increase within (0, 1], got {v}")
        if v[-1] != 1.0:
            raise ValueError(f"the last rung must be 1.0 (every fitness question), got {v}")
        return v


class FitnessConfig(_Strict):
    """What :class:`mergekit_evo.fitness.FitnessSpec` gets (tasks, limit, few-shot, ...)."""

    # a fitness of your own: "package.module:callable", (model, tokenizer) -> float | dict
    function: str | None = None  # (before tasks: the tasks check reads it)
    # lm-eval tasks; with ``function``: the names (and weights) of the keys of its dict result
    tasks: list[TaskConfig] = Field([], validate_default=True)
    limit: Number | None = None
    num_fewshot: Int | None = Field(None, ge=0)
    batch_size: Int = Field(8, ge=1)
    max_gen_toks: Int | None = Field(None, ge=1)
    seed: Int = Field(0, ge=0, lt=_SEED_END)
    include_path: list[Text] = []  # extra lm-eval task YAML folders (e.g. the zoo's tasks)
    allow_report_split: bool = False
    objectives: Literal["weighted", "per_task"] = "weighted"
    engine: Literal["auto", "hf", "mergekit_evo"] = "auto"  # auto: mergekit_evo on CUDA
    fidelity: FidelityConfig | None = None  # multi-fidelity scoring; None: every question

    @field_validator("tasks", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"name": t} if isinstance(t, str) else t for t in v]
        return v

    @field_validator("include_path", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("function")
    @classmethod
    def _function(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$", v):
            raise ValueError(f"function must be 'package.module:callable', got {v!r}")
        return v

    @field_validator("tasks")
    @classmethod
    def _tasks_or_function(cls, v: list[TaskConfig], info: ValidationInfo) -> list[TaskConfig]:
        if not v and info.data.get("function") is None:
            raise ValueError(
                "needs at least 1 task (an lm-eval task name), or fitness.function "
                "('package.module:callable') for a Python fitness"
            )
        names = [t.name for t in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"each task may appear once; repeated: {dupes}")
        return v

    @field_validator("limit")
    @classmethod
    def _limit(cls, v: int | float | None) -> int | float | None:
        if v is not None and not v > 0:
            raise ValueError(f"limit must be > 0 (a count, or a fraction < 1), got {v!r}")
        if isinstance(v, float) and v > 1:
            raise ValueError(
                f"limit {v!r}: a fractional limit is a share of the questions in (0, 1]; a "
                "count must be a whole number"
            )
        if isinstance(v, int) and v > _MAX_INT:
            raise ValueError(f"limit {v} is too large (at most 2**53)")
        return v


class PSConfig(_Strict):
    """Parameter-space genome: which MergeKit method and which of its numbers evolve.

    ``granularity``: ``model`` (one value per model and parameter, the paper's form),
    ``layers`` (one per model, parameter and group of ``layer_group_size`` layers) - each
    optionally split per tensor ``filters`` (emitted as MergeKit conditional parameters).
    """

    # one MergeKit method, or several: the search then decides which one's space gets the
    # budget (successive halving over one CMA-ES per method, search/stage/method_race.py)
    method: Text | list[Text] = "dare_ties"
    # default: every float per-model parameter w/o default
    parameters: list[Text] | None = Field(None, min_length=1)
    global_parameters: list[Text] = []  # shared float parameters to evolve too (e.g. lambda, t)
    granularity: Literal["model", "layers"] = "model"
    layer_group_size: Int = Field(1, ge=1)
    filters: list[Text] = []
    bounds: dict[Text, Bounds] = {}
    x0: Float | dict[Text, Float] = 0.5
    normalize_weights: bool = False  # rescale per-model weights to sum 1 (per group/filter)
    fixed: dict[str, Any] = {}  # global parameters passed as is (normalize, int8_mask, ...)
    # a MergeKit recipe as the template: its numbers are the start point (space/template.py)
    recipe: dict[str, Any] | None = None

    @field_validator("parameters", "global_parameters", "filters")
    @classmethod
    def _unique(cls, v: list[str] | None) -> list[str] | None:
        return _no_repeats(v)

    @field_validator("bounds")
    @classmethod
    def _bounds(cls, v: dict[str, Bounds]) -> dict[str, Bounds]:
        for k, (lo, hi) in v.items():
            if not lo < hi:
                raise ValueError(f"bounds for {k!r} need low < high, got [{lo}, {hi}]")
        return v

    @field_validator("method")
    @classmethod
    def _methods(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list):
            if not v:
                raise ValueError("needs at least one merge method, e.g. [dare_ties, ties]")
            dupes = sorted({m for m in v if v.count(m) > 1})
            if dupes:
                raise ValueError(f"each method may appear once; repeated: {dupes}")
            if len(v) == 1:
                return v[0]
        return v

    @property
    def methods(self) -> list[str]:
        """The merge methods searched (one, or the choice)."""
        return list(self.method) if isinstance(self.method, list) else [self.method]


class DFSConfig(_Strict):
    """Data-flow-space genome: indicator array I (T = M * r) and scale matrix W."""

    # default: the source models in order ('ps' in PS+DFS)
    models: list[Text] | None = Field(None, min_length=1)
    # r; T = M * r slots, one evolved number each (the paper: 3)
    repeats: Int = Field(3, ge=1, le=MAX_REPEATS)
    scales: Literal["full", "compact", "shared"] = "full"
    scale_bounds: Bounds = (0.1, 2.0)  # W folds into weights by 1/s: must stay > 0
    indicator_bounds: Bounds = (-1.0, 1.0)
    # model_a: A's first repetition at +2 sigma, every other slot at -2 sigma (A's own path);
    # paper: the others at 0, the on/off threshold (see mergekit_evo.space.dfs)
    init_indicators: Literal["model_a", "paper", "all", "uniform", "random"] = "model_a"
    init_scales: Literal["ones", "random", "identity"] = "ones"
    min_layers_per_model: Int = Field(0, ge=0)
    evolve: Literal["both", "indicators", "scales"] = "both"
    window: tuple[Int, Int] | None = None  # evolve I only over slots [start, end)
    # a layer path to start from instead of model A's: [[model name, layer], ...] in order
    # (a passthrough frankenmerge's slices, --from-recipe); overrides init_indicators
    start_path: list[tuple[Text, Int]] | None = Field(None, min_length=1)
    pin_ends: bool = True
    # the model whose final norm and lm_head the merges take (a name of dfs.models, or 'ps' in
    # PS+DFS); None: model A, as in the paper.  --from-recipe sets it to a passthrough
    # frankenmerge's last slice's model, so trial 0 is that recipe exactly
    head_model: Text | None = None
    # MergeKit's tokenizer_source for the merges: 'base' (model A's), 'union', or a model name
    # or path; None: model A's tokenizer
    tokenizer_source: Text | None = None
    # slot-flip polish (mergekit_evo.search.stage.polish): this share of the DFS stage's trials is
    # kept back from CMA-ES for a local search around its champion; 0 switches it off, 1 leaves
    # CMA-ES the start point only (a local search from model A's path)
    polish_share: Float = Field(1.0, ge=0.0, le=1.0)
    polish_step: Float = Field(0.05, gt=0.0, le=0.5)  # scale move, fraction of scale_bounds range
    polish_min_step: Float = Field(0.005, gt=0.0)  # the move halves down to this
    # the order the polish tries path moves in, which decides what it sees when the stage's
    # budget left is smaller than a neighbourhood (~2T path moves): "flips" single-slot flips,
    # then shifts and swaps, then run moves (short runs first); "runs" the run moves first,
    # their lengths coarse to fine (half a run, then quarters, ...), then swaps, shifts, flips,
    # and a run swap lands in the repetition that keeps its place in the path (docs/search.md)
    polish_order: Literal["flips", "runs"] = "flips"

    @field_validator("models")
    @classmethod
    def _unique(cls, v: list[str] | None) -> list[str] | None:
        return _no_repeats(v)

    @field_validator("polish_min_step")
    @classmethod
    def _polish_steps(cls, v: float, info: ValidationInfo) -> float:
        step = info.data.get("polish_step")
        if step is not None and v > step:
            raise ValueError(
                f"must be <= polish_step ({step}): the scale move halves from polish_step "
                f"down to polish_min_step"
            )
        return v

    @field_validator("scale_bounds", "indicator_bounds")
    @classmethod
    def _order(cls, v: Bounds) -> Bounds:
        if not v[0] < v[1]:
            raise ValueError(f"need low < high, got [{v[0]}, {v[1]}]")
        return v

    @field_validator("scale_bounds")
    @classmethod
    def _positive_scales(cls, v: Bounds) -> Bounds:
        if v[0] <= 0:
            raise ValueError(f"scales must stay > 0 (low bound {v[0]}); e.g. [0.1, 2.0]")
        return v

    @field_validator("indicator_bounds")
    @classmethod
    def _straddle_zero(cls, v: Bounds) -> Bounds:
        if not v[0] < 0 < v[1]:
            raise ValueError(
                f"need low < 0 < high (a slot is on the path when its value is > 0), got "
                f"[{v[0]}, {v[1]}]"
            )
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and not 0 <= v[0] < v[1]:
            raise ValueError(f"window needs 0 <= start < end, got {list(v)}")
        return v


class PSDFSConfig(_Strict):
    """PS+DFS: a PS search, then a DFS search whose model A is the PS champion."""

    partner: Text | None = None  # model B of the DFS stage (paper: the language source)
    # DFS over the top-k PS candidates (k models of the DFS stage)
    ps_candidates_multiplier: Int | None = Field(None, ge=2, le=64)
    ps_trials: Int | None = Field(None, ge=1)  # PS share of the budget; default: half


class ConfirmConfig(_Strict):
    """The winner's curse: a stage's champion is picked on questions it was not searched on.

    At the end of each stage its ``top_k`` best candidates are scored again on ``questions``
    more questions per task of the search split, right after the fitness questions (so never
    part of any fitness, and never the report split); the champion is the one with the best
    accuracy over fitness and confirm questions together. ``questions``: None picks up to 200,
    and no more than the fitness questions, where the split has room (fitness.limit leaves
    them); 0 switches the step off.
    """

    questions: Int | None = Field(None, ge=0)
    top_k: Int = Field(5, ge=1)


class StartPointsConfig(_Strict):
    """The merges a person tries first, scored before the optimiser proposes anything.

    PS: each source alone, equal-weight task arithmetic, the method at MergeKit's defaults and
    the configured start (x0, or the --from-recipe recipe). DFS: each model's own layer path
    and the two half-and-half frankenmerges. They count in the budget; CMA-ES then starts from
    the best of them, with step ``sigma0`` (None: optimizer.sigma0).
    """

    enabled: bool = True
    sigma0: Float | None = Field(None, gt=0)


class OptimizerConfig(_Strict):
    """Optuna sampler settings; CMA-ES is the paper's choice."""

    sampler: Literal["cmaes", "tpe", "nsgaii", "random"] = "cmaes"
    population_size: Int | None = Field(None, ge=2, le=100_000)  # default 4 + floor(3 ln n)
    sigma0: Float = Field(1 / 6, gt=0)
    seed: Int = Field(0, ge=0, lt=_SEED_END)
    separable: bool = False
    lr_adapt: bool = False


class BudgetConfig(_Strict):
    """When to stop; the first condition met wins."""

    max_trials: Int = Field(100, ge=1)
    patience: Int | None = Field(None, ge=1)  # generations without improvement
    target_fitness: Float | None = None
    target_gain: Float | None = None  # relative gain over the best source model
    # absolute gain over the best source (champion - best source: metrics.json's fitness_gain)
    target_fitness_gain: Float | None = None
    wall_clock_s: Float | None = Field(None, gt=0)
    # a run of failed candidates means something is wrong with every candidate (a broken
    # model, a scorer that cannot run): stop and say why rather than burn the budget; null: never
    max_consecutive_failures: Int | None = Field(5, ge=1)


class SearchConfig(_Strict):
    """A whole search, as read from YAML."""

    mode: Literal["ps", "dfs", "ps_dfs"] = "ps"
    models: dict[Text, Text] = Field(min_length=1)
    base_model: Text | None = None
    ps: PSConfig = PSConfig()
    dfs: DFSConfig = DFSConfig()
    ps_dfs: PSDFSConfig = PSDFSConfig()
    fitness: FitnessConfig
    report: FitnessConfig | None = None
    optimizer: OptimizerConfig = OptimizerConfig()
    budget: BudgetConfig = BudgetConfig()
    start_points: StartPointsConfig = StartPointsConfig()
    confirm: ConfirmConfig = ConfirmConfig()
    storage: Text | None = None  # database URL or journal file; default RUN_DIR/study.journal
    study_name: Text = "mergekit-evo"  # distinct per search when several share one database
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    merge_seed: Int = Field(0, ge=0, lt=_SEED_END)  # MergeKit --random-seed (DARE's masks)
    # run a model folder's own Python code (transformers' trust_remote_code): off unless asked
    trust_remote_code: bool = False
    device: str = "cpu"  # cpu, cuda, cuda:N, mps, xpu, xpu:N
    # where candidates are built: "memory" (sources resident, PS merged in place, DFS routed),
    # "disk" (MergeKit writes each candidate, then it is loaded), "auto" (memory on CUDA)
    candidates: Literal["auto", "memory", "disk"] = "auto"
    baselines: bool = True  # score each source model first (metrics.json)

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, v: Any) -> Any:
        if isinstance(v, list):  # [path, ...] or [{name: path}] also accepted
            out: dict[Any, Any] = {}
            for i, item in enumerate(v):
                pairs = item.items() if isinstance(item, dict) else [(Path(str(item)).name, item)]
                for name, path in pairs:
                    if name in out:
                        raise ValueError(
                            f"item {i}: a second model named {name!r}; name them "
                            "({name: path, ...})"
                        )
                    out[name] = path
            return out
        return v

    @field_validator("models")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if name == "ps":
                raise ValueError("'ps' is reserved for the PS stage output; rename the model")
            if not name.isprintable():
                raise ValueError(f"model name {name!r} has control characters")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"cpu|mps|(cuda|xpu)(:\d{1,3})?", v):
            raise ValueError(f"device must be cpu, cuda, cuda:N, mps, xpu or xpu:N, got {v!r}")
        return v

    @field_validator("storage")
    @classmethod
    def _storage(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if "://" in v:
            scheme = v.split("://", 1)[0]
            if not re.fullmatch(r"(sqlite|postgres|postgresql|mysql)(\+\w+)?", scheme):
                raise ValueError(
                    f"{scheme!r} is not a database Optuna can use (postgresql://..., "
                    "mysql://..., sqlite:///FILE), nor a journal file path"
                )
        elif os.path.isdir(v):
            raise ValueError(f"storage {v!r} is a folder; a journal file path is needed")
        return v

    @field_validator("study_name")
    @classmethod
    def _study_name(cls, v: str) -> str:
        if not v.isprintable() or len(v) > 200:
            raise ValueError("study_name must be printable text of at most 200 characters")
        return v

    @model_validator(mode="after")
    def _cross(self) -> SearchConfig:
        # cross-field errors start with their field path; _format turns it into the location
        if self.mode == "dfs" and self.dfs.models is None and len(self.models) < 2:
            raise ValueError("models: DFS needs at least two models (models: or dfs.models:)")
        if self.mode == "dfs" and self.dfs.models is not None:
            for i, m in enumerate(self.dfs.models):
                if m not in self.models and not os.path.isdir(m):
                    raise ValueError(
                        f"dfs.models.{i}: {m!r} is neither a name in models: "
                        f"{sorted(self.models)} nor a model folder"
                    )
        heads = self.dfs_labels()
        if self.dfs.head_model is not None and heads and self.dfs.head_model not in heads:
            raise ValueError(
                f"dfs.head_model: {self.dfs.head_model!r} is not a model of the DFS stage; "
                f"one of {heads}"
            )
        tok = self.dfs.tokenizer_source
        if (
            self.mode != "ps"
            and tok not in (None, "base", "union")
            and tok not in self.models
            and not os.path.isdir(str(tok))
        ):
            raise ValueError(
                f"dfs.tokenizer_source: {tok!r} is neither 'base', 'union', a name in models: "
                f"{sorted(self.models)} nor a model folder"
            )
        if self.mode == "ps_dfs" and self.ps_dfs.partner is not None:
            if self.ps_dfs.partner not in self.models:
                raise ValueError(
                    f"ps_dfs.partner: {self.ps_dfs.partner!r} is not one of models: "
                    f"{sorted(self.models)}"
                )
        if self.optimizer.sampler == "nsgaii" and self.mode == "ps_dfs":
            raise ValueError("optimizer.sampler: nsgaii is supported for mode ps or dfs only")
        for key in ("dtype", "out_dtype"):
            value = (self.ps.recipe or {}).get(key)
            if value is not None and str(value).removeprefix("torch.") not in MERGEKIT_DTYPES:
                raise ValueError(
                    f"ps.recipe.{key}: {value!r} is not a dtype MergeKit knows; use one of "
                    f"{list(MERGEKIT_DTYPES)}"
                )
        if isinstance(self.ps.method, list) and self.ps.recipe is not None:
            raise ValueError(
                "ps.method: a recipe (ps.recipe, --from-recipe) fixes its own method; give one "
                "method or drop the recipe"
            )
        if self.fitness.fidelity is not None and self.fitness.objectives == "per_task":
            raise ValueError(
                "fitness.fidelity: multi-fidelity stops a candidate on one number; it needs "
                "fitness.objectives: weighted"
            )
        if self.fitness.objectives == "per_task" and self.optimizer.sampler == "cmaes":
            raise ValueError(
                "fitness.objectives: per_task (several objectives) needs optimizer.sampler "
                "nsgaii (or tpe); CMA-ES optimises one number"
            )
        return self

    def dfs_labels(self) -> list[str]:
        """The names of the DFS stage's models, model A first (what ``dfs.head_model`` names):
        ``dfs.models`` (or ``models``) in DFS; ``ps`` (``ps2``, ...) and the partner in PS+DFS."""
        if self.mode == "dfs":
            return list(self.dfs.models or self.models)
        if self.mode == "ps_dfs":
            k = self.ps_dfs.ps_candidates_multiplier
            if k:
                return ["ps", *(f"ps{i}" for i in range(2, k + 1))]
            return ["ps", self.ps_dfs.partner or list(self.models)[-1]]
        return []

    def model_path(self, name: str) -> str:
        """Path of a source model by name (or the name itself when it already is a path)."""
        return self.models.get(name, name)

    def for_method(self, method: str) -> SearchConfig:
        """This config with one of ``ps.method``'s methods (the method choice searches each in
        a study of its own). ``ps.parameters`` (and their bounds and x0) keep only what the
        method has and uses: no ``density`` for methods that never prune (task_arithmetic,
        linear), where it would be a dimension that changes nothing."""
        ps = self.ps
        if not isinstance(ps.method, list):
            return self
        upd: dict[str, Any] = {"method": method}
        if ps.parameters is not None:
            keep = [p for p in ps.parameters if p in _used_parameters(method)]
            upd["parameters"] = keep
            upd["bounds"] = {k: v for k, v in ps.bounds.items() if k in keep}
            if isinstance(ps.x0, dict):
                upd["x0"] = {k: v for k, v in ps.x0.items() if k in keep}
        return self.model_copy(update={"ps": ps.model_copy(update=upd)})


def _used_parameters(method: str) -> set[str]:
    """A registered method's per-model float parameters that change its result."""
    from mergekit.merge_methods import registry

    try:
        m = registry.get(method)
    except Exception:
        return set()  # unknown: the PS space names it (with the registered ones)
    used = {
        p.name for p in m.spec.parameters if p.value_type is float and p.scope.value != "shared"
    }
    if getattr(m, "sparsification_method", "") is None:  # task_arithmetic: density unused
        used.discard("density")
    return used


#: a location part pydantic adds for one branch of a union (``dict[str,float]``, ``int``)
_BRANCH = re.compile(
    r"^(int|float|str|bool|none|constrained-\w+|(dict|list|tuple|set|literal|function-\w+)\[.*)$"
)


def _loc(loc: tuple[Any, ...]) -> str:
    parts = (p for p in loc if not str(p).startswith("function-") and not _is_branch(p))
    return ".".join(str(p) for p in parts) or "<root>"


def _is_branch(part: Any) -> bool:
    return isinstance(part, str) and bool(_BRANCH.match(part))


def _one_branch(errors: list[Any]) -> list[Any]:
    """A value that fits no branch of a union (``x0: float | {name: float}``) gets an error
    per branch; keep one field's errors from the branch the value's type points at."""
    out: list[Any] = []
    seen: set[tuple[Any, ...]] = set()
    for e in errors:
        cut = next((i for i, p in enumerate(e["loc"]) if _is_branch(p)), None)
        if cut is None:
            out.append(e)
            continue
        field = tuple(e["loc"][:cut])
        if field in seen:
            continue
        group = [x for x in errors if tuple(x["loc"][:cut]) == field]
        kind = "dict" if isinstance(e.get("input"), dict) else None
        kind = kind or ("list" if isinstance(e.get("input"), list | tuple) else "scalar")
        for x in group:
            branch = str(x["loc"][cut]) if len(x["loc"]) > cut else ""
            shape = "dict" if branch.startswith("dict[") else None
            shape = shape or ("list" if branch.startswith(("list[", "tuple[")) else "scalar")
            if shape == kind:
                out.append(x)
        if not any(tuple(x["loc"][:cut]) == field for x in out):
            out.append(group[0])
        seen.add(field)
    return out


def _format(err: ValidationError) -> ConfigError:
    out = []
    for e in _one_branch(err.errors()):
        msg = e["msg"].removeprefix("Value error, ")
        value = e.get("input")
        m = re.match(r"^([\w.]+): (.*)$", msg, re.S)
        if not e["loc"] and m:  # a cross-field check that names its own field
            out.append((m.group(1), m.group(2)))
            continue
        if e["type"] == "missing":
            out.append((_loc(e["loc"]), "required field is missing"))
            continue
        if e["type"] == "extra_forbidden":
            out.append((_loc(e["loc"]), f"unknown field (value {value!r})"))
            continue
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        out.append((_loc(e["loc"]), msg if shown in msg else f"{msg} (got {shown})"))
    return ConfigError(out)


#: a config is a page of YAML; more nodes than this is an alias bomb or a mistake
_MAX_NODES = 100_000


#: config parts pydantic does not type (passed to MergeKit as they are)
_UNTYPED = ("ps.fixed.", "ps.recipe.")


def _non_finite_text(v: str) -> bool:
    """Is ``v`` a number's spelling that is NaN or infinite (``"nan"``, ``"-Infinity"``,
    ``"1e999"``, ``".inf"``)?"""
    text = v.strip().lower()
    if text.lstrip("+-") in (".nan", ".inf"):
        return True
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


def _non_finite(data: Any) -> list[tuple[str, str]]:
    """Every NaN / infinite number in the raw config, by field path.

    pydantic accepts ``nan`` and ``inf`` as floats, and they would surface much later (Optuna
    rejects them as a start point, CMA-ES diverges), so they are refused here, everywhere.
    Walks at most ``_MAX_NODES`` nodes: YAML aliases can make a small file a huge tree.
    """
    errors: list[tuple[str, str]] = []
    stack: list[tuple[str, Any]] = [("", data)]
    seen = 0
    while stack:
        path, v = stack.pop()
        seen += 1
        if seen > _MAX_NODES:
            return [("<root>", f"more than {_MAX_NODES} values (YAML aliases?); not a config")]
        if isinstance(v, float) and not math.isfinite(v):
            errors.append((path or "<root>", f"{v!r} is not a finite number; use a real number"))
        elif isinstance(v, str) and path.startswith(_UNTYPED) and _non_finite_text(v):
            # an untyped value (ps.fixed, ps.recipe) MergeKit would read as a float later
            errors.append((path, f"{v!r} is not a finite number; use a real number"))
        elif isinstance(v, dict):
            stack.extend((f"{path}.{k}" if path else str(k), x) for k, x in v.items())
        elif isinstance(v, list | tuple):
            stack.extend((f"{path}.{i}" if path else str(i), x) for i, x in enumerate(v))
    return sorted(errors)


def parse_search_config(data: dict[str, Any]) -> SearchConfig:
    """Validate a config mapping field by field; raises :class:`ConfigError`."""
    if data is None:
        raise ConfigError(
            [("<root>", "the config is empty; expected a mapping (mode:, models:, ...)")]
        )
    if not isinstance(data, dict):
        raise ConfigError([("<root>", f"expected a mapping, got {type(data).__name__}")])
    bad = _non_finite(data)
    if bad:
        raise ConfigError(bad)
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as err:
        raise _format(err) from None


def _resolve_path(p: str, base_dir: Path | None) -> str:
    if os.path.isdir(p):
        return str(Path(p).resolve())
    if base_dir is not None and not os.path.isabs(p) and (base_dir / p).is_dir():
        return str((base_dir / p).resolve())
    return p


def _a_file(p: str, base_dir: Path | None) -> bool:
    """Does ``p`` name an existing file (not a folder), from cwd or the config's folder?"""
    if os.path.isdir(p):
        return False
    if os.path.isfile(p):
        return True
    return base_dir is not None and not os.path.isabs(p) and (base_dir / p).is_file()


def _folders_not_files(cfg: SearchConfig, base_dir: Path | None) -> list[tuple[str, str]]:
    """Fields that need a folder (a model, a task folder) but name an existing file."""
    fields: list[tuple[str, str]] = [(f"models.{k}", v) for k, v in cfg.models.items()]
    if cfg.base_model:
        fields.append(("base_model", cfg.base_model))
    for i, m in enumerate(cfg.dfs.models or []):
        if m not in cfg.models:
            fields.append((f"dfs.models.{i}", m))
    for key in ("fitness", "report"):
        fc: FitnessConfig | None = getattr(cfg, key)
        for i, p in enumerate(fc.include_path if fc is not None else []):
            fields.append((f"{key}.include_path.{i}", p))
    return [
        (
            field,
            f"a file, not a task folder {p!r}; give a folder of lm-eval task YAML files"
            if "include_path" in field
            else f"a file, not a model folder {p!r}; give a folder with config.json (or a hub id)",
        )
        for field, p in fields
        if _a_file(p, base_dir)
    ]


def resolve_paths(cfg: SearchConfig, base_dir: Path | None = None) -> SearchConfig:
    """Make local model paths absolute (relative ones: to cwd, else to the config's folder).

    Raises :class:`ConfigError` where a model or task folder names a file."""
    bad = _folders_not_files(cfg, base_dir)
    if bad:
        raise ConfigError(bad)
    models = {k: _resolve_path(v, base_dir) for k, v in cfg.models.items()}
    base = _resolve_path(cfg.base_model, base_dir) if cfg.base_model else None
    upd: dict[str, Any] = {"models": models, "base_model": base}
    for key in ("fitness", "report"):
        fc: FitnessConfig | None = getattr(cfg, key)
        if fc is not None and fc.include_path:
            paths = [_resolve_path(p, base_dir) for p in fc.include_path]
            upd[key] = fc.model_copy(update={"include_path": paths})
    if cfg.ps.recipe is not None:
        from mergekit_evo.recipe_paths import map_models

        recipe = map_models(cfg.ps.recipe, lambda p: _resolve_path(p, base_dir))
        upd["ps"] = cfg.ps.model_copy(update={"recipe": recipe})
    return cfg.model_copy(update=upd)


def num_layers(path: str) -> int:
    """Layer count from ``config.json`` (no weights read)."""
    import json

    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    cfg = cfg.get("text_config", cfg)
    return int(cfg["num_hidden_layers"])


def yaml_error_line(path: Path, err: yaml.YAMLError) -> str:
    """One line naming where the YAML breaks (line, column) and why; PyYAML's own message is
    several lines ending in a bare ``^``."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    ctx, ctx_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    what = str(getattr(err, "problem", None) or type(err).__name__)
    if ctx:
        opened = f" (line {ctx_mark.line + 1}, column {ctx_mark.column + 1})" if ctx_mark else ""
        what = f"{what}, {ctx}{opened}"
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
    return f"not valid YAML at {where}: {what}"


def load_search_config(path: str | os.PathLike[str]) -> SearchConfig:
    """Read, validate and resolve a search config YAML; raises :class:`ConfigError`.

    Field checks only: what needs the model folders (config.json, weights, tokenizers, layer
    counts) is :func:`mergekit_evo.preflight.preflight`, which ``run_search`` runs first.
    """
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as e:
        raise ConfigError([("<file>", f"cannot read {str(p)!r}: {e.strerror}")]) from None
    except yaml.YAMLError as e:
        raise ConfigError([("<file>", yaml_error_line(p, e))]) from None
    except (UnicodeDecodeError, RecursionError) as e:
        raise ConfigError([("<file>", f"{str(p)!r} is not a YAML text file ({e})")]) from None
    return resolve_paths(parse_search_config(data), p.parent)
