"""``evaluate_gsm8k`` / ``evaluate_mgsm``: a model object scored by the shipped lm-eval tasks.

Same tasks, prompts, answer filters and metric as a search (``evo_gsm8k*``,
``evo_mgsm_direct_<lang>*``, ``exact_match,numeric``), through the same
:class:`~mergekit_evo.fitness.FitnessEvaluator`, built once per setting and reused. Passed as a
merge's ``fitness_fn`` (bare, or as ``functools.partial`` with settings), they are not called
per candidate: :func:`benchmark_fitness` turns them into the search's lm-eval fitness on the
benchmark's *search* split, so the test split stays a report number.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from mergekit_evo.api.errors import APIConfigError, shown
from mergekit_evo.fitness.data import MGSM_LANGUAGES

GSM8K_SPLITS = ("test", "search")
MGSM_SPLITS = ("test", "search", "heldout")
#: the fast engine (static cache, greedy, CUDA graphs on GPU); also the faster one on CPU
DEFAULT_ENGINE = "mergekit_evo"


def gsm8k_task(split: str) -> str:
    """The shipped GSM8K task of a split."""
    if split not in GSM8K_SPLITS:
        raise APIConfigError(f"split: {split!r} is not a GSM8K split; valid: {GSM8K_SPLITS}")
    return "evo_gsm8k" if split == "test" else "evo_gsm8k_search"


def mgsm_task(language: str, split: str) -> str:
    """The shipped MGSM (direct prompt) task of a language and split."""
    if language not in MGSM_LANGUAGES:
        raise APIConfigError(
            f"language: {language!r} is not an MGSM language; valid: {', '.join(MGSM_LANGUAGES)}"
        )
    if split not in MGSM_SPLITS:
        raise APIConfigError(f"split: {split!r} is not an MGSM split; valid: {MGSM_SPLITS}")
    return f"evo_mgsm_direct_{language}" + ("" if split == "test" else f"_{split}")


@functools.lru_cache(maxsize=8)
def _evaluator(spec_json: str) -> Any:
    """One evaluator per setting: tasks, prompts and few-shot draws are built once."""
    from mergekit_evo.fitness import FitnessEvaluator, FitnessSpec

    return FitnessEvaluator(FitnessSpec.model_validate_json(spec_json))


def _evaluate(
    model: Any,
    tokenizer: Any,
    task: str,
    *,
    max_samples: int | None,
    num_fewshot: int | None,
    max_gen_toks: int | None,
    batch_size: int,
    device: str | None,
    engine: str,
    require_language: str | None,
    return_samples: bool,
) -> dict[str, Any]:
    from mergekit_evo.fitness import FitnessSpec

    if max_samples is not None and (isinstance(max_samples, bool) or max_samples < 1):
        raise APIConfigError(f"max_samples: must be a count >= 1 or None (got {max_samples!r})")
    spec = FitnessSpec(
        tasks=[{"name": task, "require_language": require_language}],
        limit=max_samples,
        num_fewshot=num_fewshot,
        max_gen_toks=max_gen_toks,
        batch_size=batch_size,
        device=device or str(getattr(model, "device", "cpu")),  # never moves the caller's model
        engine=engine,
        allow_report_split=True,
        purpose="report",
    )
    result = _evaluator(spec.model_dump_json()).score(model, tokenizer, log_samples=True)
    logged = (result.samples or {}).get(task, [])
    metric = result.metrics[task]
    name = metric.split(",")[0]
    correct = int(sum(round(float(s.get(name, 0.0))) for s in logged))
    out: dict[str, Any] = {
        "accuracy": result.per_task[task][metric],
        "correct": correct,
        "total": len(logged),
        "task": task,
        "metric": metric,
        "seconds": result.seconds,
    }
    if return_samples:
        out["samples"] = [_sample(s, name) for s in logged]
    return out


def _sample(s: dict[str, Any], metric: str) -> dict[str, Any]:
    args = s.get("arguments") or [[""]]
    resps = s.get("resps") or [[""]]
    return {
        "doc_id": s.get("doc_id"),
        "question": (s.get("doc") or {}).get("question"),
        "prompt": args[0][0] if args and args[0] else "",
        "target": s.get("target"),
        "response": resps[0][0] if resps and resps[0] else "",
        "answer": s.get("filtered_resps", [None])[0],
        "correct": bool(round(float(s.get(metric, 0.0)))),
    }


def evaluate_gsm8k(
    model: Any,
    tokenizer: Any,
    max_samples: int | None = None,
    *,
    split: str = "test",
    num_fewshot: int | None = None,
    max_gen_toks: int | None = None,
    batch_size: int = 8,
    device: str | None = None,
    engine: str = DEFAULT_ENGINE,
    return_samples: bool = False,
) -> dict[str, Any]:
    """GSM8K accuracy of a model in memory: ``{"accuracy", "correct", "total", ...}``.

    ``split``: ``test`` (1,319 questions, 5-shot from train; the number to report) or
    ``search`` (GSM8K train rows 0-999, what a search optimises). ``max_samples``: the first N
    questions. ``return_samples``: add ``samples``, one dict per question (prompt, response,
    extracted answer, target, correct). The model stays on its device unless ``device`` says.
    """
    return _evaluate(
        model, tokenizer, gsm8k_task(split), max_samples=max_samples, num_fewshot=num_fewshot,
        max_gen_toks=max_gen_toks, batch_size=batch_size, device=device, engine=engine,
        require_language=None, return_samples=return_samples,
    )  # fmt: skip


def evaluate_mgsm(
    model: Any,
    tokenizer: Any,
    max_samples: int | None = None,
    *,
    language: str = "ja",
    split: str = "test",
    require_language: bool = False,
    num_fewshot: int | None = None,
    max_gen_toks: int | None = None,
    batch_size: int = 8,
    device: str | None = None,
    engine: str = DEFAULT_ENGINE,
    return_samples: bool = False,
) -> dict[str, Any]:
    """MGSM accuracy in one language (lm-eval's ``mgsm_direct`` prompt), like
    :func:`evaluate_gsm8k`. ``split``: ``test`` (all 250), ``search`` (rows 0-99) or
    ``heldout`` (100-249); ``require_language``: count an answer only if it is also written in
    ``language`` (the paper's MGSM-JA rule)."""
    return _evaluate(
        model, tokenizer, mgsm_task(language, split), max_samples=max_samples,
        num_fewshot=num_fewshot, max_gen_toks=max_gen_toks, batch_size=batch_size,
        device=device, engine=engine, require_language=language if require_language else None,
        return_samples=return_samples,
    )  # fmt: skip


# -- as a merge's fitness ---------------------------------------------------------------------

#: evaluate_* keywords that carry over to the search's lm-eval fitness, and the field they set
_FITNESS_KEYS = {
    "max_samples": "limit",
    "num_fewshot": "num_fewshot",
    "max_gen_toks": "max_gen_toks",
    "batch_size": "batch_size",
    "engine": "engine",
}


def benchmark_fitness_config(
    benchmark: str,
    *,
    language: str = "ja",
    split: str = "search",
    proxy: bool = False,
    require_language: bool = False,
    **settings: Any,
) -> dict[str, Any]:
    """The search config's ``fitness`` section for a benchmark: its search-split task, or with
    ``proxy`` the log-likelihood one (log P(gold answer | question), no generation)."""
    if split != "search":
        raise APIConfigError(
            f"split: {split!r} as a merge's fitness would optimise a report split; a search "
            "scores split='search' (the default for a fitness) and reports the test split"
        )
    if benchmark == "gsm8k":
        if require_language:
            raise APIConfigError("require_language: an MGSM setting; GSM8K is English only")
        task = gsm8k_task("search")
    else:
        task = mgsm_task(language, "search")
    if proxy:
        if require_language:
            raise APIConfigError(
                "require_language: the proxy fitness generates no text to check the language of"
            )
        task += "_loglik"
    doc: dict[str, Any] = {
        "tasks": [{"name": task, "require_language": language if require_language else None}],
        "engine": DEFAULT_ENGINE,
    }
    for key, value in settings.items():
        if key not in _FITNESS_KEYS:
            raise APIConfigError(
                f"{key} = {shown(value)}: means nothing for a search's fitness; valid: "
                f"{', '.join(_FITNESS_KEYS)}, split, language, require_language"
            )
        doc[_FITNESS_KEYS[key]] = value
    return doc


def benchmark_fitness(fn: Callable[..., Any]) -> dict[str, Any] | None:
    """The ``fitness`` section for ``evaluate_gsm8k`` / ``evaluate_mgsm`` (or a
    ``functools.partial`` of one); None for any other callable."""
    keywords: dict[str, Any] = {}
    while isinstance(fn, functools.partial):
        if fn.args:
            raise APIConfigError(
                "fitness_fn: a partial of evaluate_* takes keywords only (max_samples=...), "
                f"got positional {fn.args}"
            )
        keywords = {**fn.keywords, **keywords}
        fn = fn.func
    if fn is evaluate_gsm8k:
        benchmark = "gsm8k"
    elif fn is evaluate_mgsm:
        benchmark = "mgsm"
    else:
        return None
    if keywords.pop("return_samples", False):
        raise APIConfigError("return_samples: a search keeps no per-question outputs; drop it")
    if "device" in keywords:
        raise APIConfigError("device: give it to the merge call (device=...), not the fitness")
    if benchmark == "gsm8k" and "language" in keywords:
        raise APIConfigError("language: an MGSM setting; evaluate_gsm8k is GSM8K (English)")
    keywords.setdefault("max_samples", None)
    return benchmark_fitness_config(benchmark, **keywords)
