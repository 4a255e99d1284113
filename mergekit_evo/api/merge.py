"""``ps_merge_with_cmaes`` and ``hybrid_merge``: the write-up's merge calls over ``run_search``.

Each call builds a search config (:class:`~mergekit_evo.config.SearchConfig`) from its
arguments and runs the real search: its Optuna storage, resume, run folder (a temporary one
unless ``out=``), report and ``metrics.json``; every candidate is a MergeKit recipe, and the
returned model is the champion folder MergeKit wrote, loaded as a ``PreTrainedModel``.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mergekit_evo.api.benchmarks import benchmark_fitness
from mergekit_evo.api.errors import APIConfigError
from mergekit_evo.api.models import Sources, resolve_models
from mergekit_evo.api.optimizer import CMAESConfig, check_merge_config, search_settings
from mergekit_evo.config import ConfigError, parse_search_config, resolve_paths

Log = Callable[[str], None] | None
#: stands in for a Python fitness while the config is validated; run_search names the function
_PLACEHOLDER = "mergekit_evo.api.merge:fitness_fn"


class PSMergeResult(tuple):
    """``(merged_model, coeffs, fitness)``, plus ``recipe`` (the MergeKit recipe of the model),
    ``tokenizer``, ``run_dir`` and ``metrics`` (``metrics.json`` as the API reports it)."""

    recipe: dict[str, Any]
    tokenizer: Any
    run_dir: Path
    metrics: dict[str, Any]

    def __new__(cls, model: Any, coeffs: np.ndarray, fitness: float, **extra: Any) -> Any:
        self = super().__new__(cls, (model, coeffs, fitness))
        self.__dict__.update(extra)
        return self


class HybridMergeResult(tuple):
    """``(champion, metrics)``, plus ``recipe``, ``tokenizer`` and ``run_dir``."""

    recipe: dict[str, Any]
    tokenizer: Any
    run_dir: Path

    def __new__(cls, model: Any, metrics: dict[str, Any], **extra: Any) -> Any:
        self = super().__new__(cls, (model, metrics))
        self.__dict__.update(extra)
        return self


@dataclass
class Outcome:
    """A finished API search: the champion loaded, its recipe, metrics and run folder."""

    model: Any
    tokenizer: Any
    recipe: dict[str, Any]
    metrics: dict[str, Any]
    run_dir: Path
    sources: Sources


def api_metrics(metrics: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    """``metrics.json`` in the write-up's shape: ``baseline_fitness`` is the best source's score
    (metrics.json's ``baseline_fitness.best``; per model in ``baseline_fitness_by_model``);
    every other key as in metrics.json (``fitness_improvement`` relative, ``fitness_gain``
    absolute), plus ``run_dir``."""
    base = dict(metrics.get("baseline_fitness") or {})
    best = base.pop("best", None)
    return {
        **metrics,
        "baseline_fitness": best,
        "baseline_fitness_by_model": base,
        "run_dir": str(run_dir),
    }


def scalar_fitness(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``fn(model, tokenizer)`` as the search's fitness: a float as is, a dict by its
    ``accuracy`` (the shape ``evaluate_gsm8k`` returns); the function keeps ``fn``'s name
    (config.yml records it, a resume compares it)."""
    if not callable(fn):
        raise APIConfigError(
            f"fitness_fn: a {type(fn).__name__} is not callable; give fn(model, tokenizer) -> "
            "float | dict with 'accuracy', or evaluate_gsm8k / evaluate_mgsm"
        )

    @functools.wraps(fn)
    def fitness(model: Any, tokenizer: Any) -> Any:
        out = fn(model, tokenizer)
        if isinstance(out, Mapping):
            if "accuracy" not in out:
                raise ValueError(
                    f"the fitness returned a dict without 'accuracy' (keys {sorted(out)}); "
                    "return a float or a dict with 'accuracy'"
                )
            return out["accuracy"]
        return out

    return fitness


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_merge_search(
    models: list[Any],
    *,
    fitness_fn: Callable[[Any, Any], Any] | None,
    fitness: dict[str, Any] | None = None,
    tokenizer: Any = None,
    base_model: Any = None,
    mode: str,
    ps: dict[str, Any],
    settings: Callable[[int], dict[str, Any]] | None,
    ps_dfs: dict[str, Any] | None = None,
    partner: int | None = None,
    out: str | Path | None = None,
    device: str | None = None,
    dtype: str | None = None,
    log: Log = print,
) -> Outcome:
    """Config from the arguments, then ``run_search`` (resuming when ``out`` holds the run).

    ``fitness``: an lm-eval fitness section (used when ``fitness_fn`` is None or one of
    ``evaluate_*``); ``settings(n)``: the ``optimizer``/``budget``/``ps_dfs`` sections for a PS
    genome of ``n`` coordinates (None: the search's defaults); ``partner``: the index in
    ``models`` of the DFS stage's model B.
    """
    from mergekit_evo.candidate import make_builder
    from mergekit_evo.search import run_search
    from mergekit_evo.space.ps import PSSpace

    fn = None
    if fitness_fn is not None:
        fitness = benchmark_fitness(fitness_fn)
        if fitness is None:
            fn = scalar_fitness(fitness_fn)
            fitness = {"function": _PLACEHOLDER}
    if fitness is None:
        raise APIConfigError("fitness_fn: required (fn(model, tokenizer) or evaluate_gsm8k)")
    if not isinstance(models, (list, tuple)) or len(models) < 1:
        raise APIConfigError(f"models: give a list of models (got {type(models).__name__})")
    device = device or default_device()
    run_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="mergekit-evo-"))
    names: set[str] = set()
    sources = resolve_models(list(models), tokenizer=tokenizer, run_dir=run_dir, taken=names)
    base_folder = None
    if base_model is not None:
        base = resolve_models(
            [base_model], tokenizer=tokenizer, run_dir=run_dir, what="base_model", taken=names
        )
        base_folder = next(iter(base.folders.values()))
        sources.in_memory.update(base.in_memory)
    dtype = dtype or sources.dtype() or ("bfloat16" if device.startswith("cuda") else "float32")
    # in memory when it can: lm-eval scores the resident DFS routes; a Python fitness in a DFS
    # stage gets a MergeKit-built model (a route is no PreTrainedModel with generate())
    if fn is not None and mode != "ps":
        candidates = "disk"
    elif sources.in_memory:
        candidates = "memory"
    else:
        candidates = "auto"  # the search's choice: in memory on CUDA, on disk on CPU
    doc: dict[str, Any] = {
        "mode": mode,
        "models": sources.folders,
        "base_model": base_folder,
        "ps": ps,
        "ps_dfs": {
            **(ps_dfs or {}),
            **({"partner": list(sources.folders)[partner]} if partner is not None else {}),
        },
        "fitness": fitness,
        "device": device,
        "dtype": dtype,
        "candidates": candidates,
    }
    cfg = _parse(doc)
    if settings is not None:
        extra = settings(len(PSSpace.from_config(cfg).vector))
        doc.update({k: v for k, v in extra.items() if k in ("optimizer", "budget")})
        doc["ps_dfs"] = {**doc["ps_dfs"], **extra.get("ps_dfs", {})}
        doc["ps"] = {**doc["ps"], **extra.get("ps", {})}
        cfg = _parse(doc)
    sources.save()  # the config checked out: write the models given in memory
    if fn is not None:  # run_search records fn's own module:qualname
        cfg = cfg.model_copy(update={"fitness": cfg.fitness.model_copy(update={"function": None})})
    builder = make_builder(cfg.candidates, cfg.device, cfg.dtype, cfg.merge_seed)
    adopt = getattr(builder, "adopt", None)
    if adopt is not None:
        for folder, (model, tok) in sources.in_memory.items():
            adopt(folder, model, tok)
    res = run_search(
        cfg, run_dir, save_champion=True, builder=builder, log=log or (lambda _: None),
        fitness_fn=fn,
    )  # fmt: skip
    del builder, adopt  # the resident sources and working model go before the champion loads
    if res.champion_path is None or res.best_recipe is None:
        raise RuntimeError(f"the search in {run_dir} ended without a champion")
    model, tok = _load(res.champion_path, cfg.device, cfg.dtype)
    metrics = api_metrics(res.metrics, res.rundir)
    return Outcome(model, tok, res.best_recipe, metrics, res.rundir, sources)


def _parse(doc: dict[str, Any]) -> Any:
    from mergekit_evo.space.ps import PSSpace

    try:
        cfg = resolve_paths(parse_search_config(doc))
        PSSpace.from_config(cfg)  # the method and its parameters, before anything is written
        return cfg
    except ConfigError as e:
        raise APIConfigError(str(e)) from None


def _load(folder: Path, device: str, dtype: str) -> tuple[Any, Any]:
    """The champion folder MergeKit wrote, as a model on ``device`` and its tokenizer."""
    import torch
    import transformers

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        folder, dtype=getattr(torch, dtype), device_map=device
    )
    model.eval()
    return model, transformers.AutoTokenizer.from_pretrained(folder)


def _weights(recipe: dict[str, Any], folders: list[str]) -> np.ndarray:
    """Each model's ``weight`` in the recipe, in the order the models were given."""
    by_path = {}
    for m in recipe.get("models") or []:
        ref = m.get("model")
        path = ref if isinstance(ref, str) else (ref or {}).get("model", {}).get("path")
        by_path[str(Path(str(path)).resolve())] = (m.get("parameters") or {}).get("weight")
    values = [by_path.get(str(Path(f).resolve())) for f in folders]
    return np.array([float(v) for v in values if isinstance(v, (int, float))], dtype=np.float64)


def ps_merge_with_cmaes(
    models: list[Any],
    fitness_fn: Callable[[Any, Any], Any],
    config: CMAESConfig | None = None,
    *,
    tokenizer: Any = None,
    base_model: Any = None,
    method: str = "linear",
    out: str | Path | None = None,
    device: str | None = None,
    dtype: str | None = None,
    log: Log = print,
) -> PSMergeResult:
    """CMA-ES over each model's merge weight: ``(merged_model, coeffs, fitness)``.

    ``linear`` (default): a weighted average, ``coeffs`` sum to 1 (in ``models`` order). With
    ``base_model`` any MergeKit method taking per-model weights (``task_arithmetic``,
    ``ties``, ``dare_ties``...; its other per-model numbers, e.g. ``density``, evolve too and
    are in ``result.recipe``). ``config`` None: the search's default budget (100 trials).
    """
    if config is not None:
        check_merge_config(config)
    linear = method == "linear"
    bounds = (
        list(config.bounds) if config is not None and isinstance(config.bounds, tuple) else None
    )
    ps: dict[str, Any] = {
        "method": method,
        "parameters": ["weight"] if linear else None,
        "normalize_weights": linear,
        "bounds": {"weight": bounds or [0.0, 1.0]},
    }

    def settings(n: int) -> dict[str, Any]:
        assert config is not None
        s = search_settings(config, n)
        return {"optimizer": s["optimizer"], "budget": s["budget"]}

    done = run_merge_search(
        models, fitness_fn=fitness_fn, tokenizer=tokenizer, base_model=base_model, mode="ps",
        ps=ps, settings=settings if config is not None else None, out=out, device=device,
        dtype=dtype, log=log,
    )  # fmt: skip
    coeffs = _weights(done.recipe, list(done.sources.folders.values()))
    fitness = float(done.metrics["champion_fitness"])
    return PSMergeResult(
        done.model, coeffs, fitness, recipe=done.recipe, tokenizer=done.tokenizer,
        run_dir=done.run_dir, metrics=done.metrics,
    )  # fmt: skip


def hybrid_merge(
    base_models: list[Any],
    fitness_fn: Callable[[Any, Any], Any],
    tokenizer: Any = None,
    *,
    config: CMAESConfig | None = None,
    base_model: Any = None,
    method: str | None = None,
    ps_candidates_multiplier: int | None = None,
    partner: int | None = None,
    out: str | Path | None = None,
    device: str | None = None,
    dtype: str | None = None,
    log: Log = print,
) -> HybridMergeResult:
    """The paper's PS+DFS merge of ``base_models``: ``(champion, metrics)``.

    PS: ``method`` (``dare_ties`` with a ``base_model``, else ``linear``) evolved by CMA-ES;
    DFS: a layer path through the PS champion and ``base_models[partner]`` (default: the last),
    or with ``ps_candidates_multiplier=k`` through the top-k PS candidates. ``config``: each
    stage gets 1 + ``max_generations`` x population trials (None: the search's default budget,
    100 trials, half per stage).
    """
    if config is not None:
        check_merge_config(config)
    method = method or ("dare_ties" if base_model is not None else "linear")
    bounds = (
        list(config.bounds) if config is not None and isinstance(config.bounds, tuple) else None
    )
    ps: dict[str, Any] = {"method": method, "normalize_weights": method == "linear"}
    if method == "linear":
        ps["parameters"] = ["weight"]
    if bounds:
        ps["bounds"] = {"weight": bounds}
    ps_dfs: dict[str, Any] = {"ps_candidates_multiplier": ps_candidates_multiplier}
    if partner is not None:
        if not isinstance(partner, int) or not -len(base_models) <= partner < len(base_models):
            raise APIConfigError(
                f"partner: {partner!r} is not an index into base_models (0..{len(base_models) - 1})"
            )
        if ps_candidates_multiplier:
            raise APIConfigError(
                "partner: with ps_candidates_multiplier the DFS stage routes through the top PS "
                "candidates, not a partner; give one of the two"
            )
    done = run_merge_search(
        base_models, fitness_fn=fitness_fn, tokenizer=tokenizer, base_model=base_model,
        mode="ps_dfs", ps=ps, settings=_stage_settings(config) if config else None,
        ps_dfs=ps_dfs, out=out, device=device, dtype=dtype, log=log,
        partner=partner,
    )  # fmt: skip
    return HybridMergeResult(
        done.model, done.metrics, recipe=done.recipe, tokenizer=done.tokenizer,
        run_dir=done.run_dir,
    )  # fmt: skip


def _stage_settings(config: CMAESConfig) -> Callable[[int], dict[str, Any]]:
    """PS+DFS budget: each stage 1 + generations x population trials (the PS population)."""

    def settings(n: int) -> dict[str, Any]:
        s = search_settings(config, n)
        per_stage = s["stage_trials"]
        budget = {**s["budget"], "max_trials": 2 * per_stage}
        return {"optimizer": s["optimizer"], "budget": budget, "ps_dfs": {"ps_trials": per_stage}}

    return settings
