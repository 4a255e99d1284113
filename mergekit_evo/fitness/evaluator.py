"""Score a model already in memory on lm-eval tasks: tasks are built once, scored many times.

A search calls :meth:`FitnessEvaluator.score` once per candidate, so everything that does not
depend on the model (task index, datasets, prompts, filters, metric checks) happens in
``__init__``; ``score`` only wraps the model in lm-eval's ``HFLM`` and runs ``simple_evaluate``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mergekit_evo.engine.cache import DecoderCache
from mergekit_evo.fitness.data import data_dir
from mergekit_evo.fitness.errors import FitnessError
from mergekit_evo.fitness.registry import SHIPPED_TASKS, TASKS_DIR, close_matches
from mergekit_evo.fitness.slices import limit_count
from mergekit_evo.fitness.spec import FitnessSpec, TaskSpec

if TYPE_CHECKING:
    from lm_eval.api.model import LM
    from lm_eval.api.task import Task
    from lm_eval.tasks import TaskManager

log = logging.getLogger(__name__)


@dataclass
class FitnessResult:
    """Combined score (weighted mean) and every numeric metric per task, as plain floats."""

    score: float
    per_task: dict[str, dict[str, float]]
    seconds: float
    metrics: dict[str, str] = field(default_factory=dict)  # task -> metric key that was scored
    counts: dict[str, int] = field(default_factory=dict)  # task -> questions scored
    # lm-eval's per-document records of the scored metric's filter (``log_samples=True``)
    samples: dict[str, list[dict[str, Any]]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "per_task": self.per_task,
            "seconds": self.seconds,
            "metrics": self.metrics,
            "counts": self.counts,
        }


class _QuietCustomDatasetWarning(logging.Filter):
    """lm-eval warns about ``--metadata`` for every task with a ``custom_dataset``: noise here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed" not in record.getMessage()


#: Prefix of every shipped task: a missing name with it is a typo, not a stock lm-eval task.
SHIPPED_PREFIX = "evo_"


def build_task_manager(task_names: list[str], include_path: list[str] | None = None) -> TaskManager:
    """One ``TaskManager`` over the shipped YAML (and ``include_path``), lm-eval's own if needed.

    Indexing lm-eval's ~10k built-in YAML files takes seconds (see docs/fitness.md), so that index
    is only built when a requested name is neither shipped, included, nor ``evo_``-prefixed.
    """
    from lm_eval.tasks import TaskManager

    paths = [str(TASKS_DIR), *(include_path or [])]
    tm = TaskManager(include_path=paths, include_defaults=False)
    missing = [name for name in task_names if name not in tm.all_tasks]
    if not missing or all(name.startswith(SHIPPED_PREFIX) for name in missing):
        return tm  # an unknown evo_ name is reported against this index
    return TaskManager(include_path=paths, include_defaults=True)


def _to_float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out


class FitnessEvaluator:
    """Validates a :class:`FitnessSpec` and builds its lm-eval tasks once; scores models."""

    def __init__(self, spec: FitnessSpec | dict[str, Any]) -> None:
        self.spec = spec if isinstance(spec, FitnessSpec) else FitnessSpec.model_validate(spec)
        data_dir()  # a MERGEKIT_EVO_DATA that names no folder fails here, not mid-search
        task_logger = logging.getLogger("lm_eval.api.task")
        if not any(isinstance(f, _QuietCustomDatasetWarning) for f in task_logger.filters):
            task_logger.addFilter(_QuietCustomDatasetWarning())
        names = [t.name for t in self.spec.tasks]
        t0 = time.perf_counter()
        self.task_manager = build_task_manager(names, self.spec.include_path)
        self._check_names(names)
        self.spec.check_splits()
        self.tasks: dict[str, Task] = self._load_tasks(names)
        self._apply_settings()
        self.decoders = DecoderCache()  # KV cache and CUDA graphs outlive one candidate
        self._encodings: dict[tuple, dict] = {}  # per tokenizer: prompts' token ids, reused
        for task in self.tasks.values():
            _reuse_requests(task)
        self.metrics: dict[str, str] = {}
        for ts in self.spec.tasks:
            self.metrics[ts.name] = self._prepare(ts, self.tasks[ts.name])
        log.info("built %d fitness tasks in %.1fs", len(self.tasks), time.perf_counter() - t0)

    # ------------------------------------------------------------------ building
    def _check_names(self, names: list[str]) -> None:
        known = set(self.task_manager.all_subtasks)
        for name in names:
            if name in known:
                continue
            if name in self.task_manager.all_tasks:
                raise FitnessError(
                    f"task {name!r} is a group or tag, not a single task; name its tasks "
                    "one by one so each gets its own weight and metric"
                )
            matches = close_matches(name, self.task_manager.all_subtasks)
            raise FitnessError(
                f"unknown task {name!r}. Closest: {matches or 'none'}. Shipped tasks: "
                f"{', '.join(sorted(SHIPPED_TASKS))} (list them with `mergekit-evo tasks`); "
                "any lm-eval task name works too"
            )

    def _load_tasks(self, names: list[str]) -> dict[str, Task]:
        try:
            loaded = self.task_manager.load(names)["tasks"]
        except FitnessError:
            raise
        except Exception as err:  # dataset download/parse failures come from deep inside lm-eval
            hint = ""
            if data_dir() is None:
                hint = (
                    " (no MERGEKIT_EVO_DATA set, so the hub datasets were used: offline, point "
                    "MERGEKIT_EVO_DATA at a folder with gsm8k/ and mgsm/)"
                )
            raise FitnessError(f"could not build tasks {names}: {err}{hint}") from err
        return {name: loaded[name] for name in names}

    def _apply_settings(self) -> None:
        """num_fewshot and max_gen_toks onto the task configs, as ``simple_evaluate`` would."""
        for task in self.tasks.values():
            if self.spec.max_gen_toks and task.get_config("output_type") == "generate_until":
                task.set_config(
                    key="generation_kwargs",
                    value={"max_gen_toks": self.spec.max_gen_toks},
                    update=True,
                )
            if self.spec.num_fewshot is not None:
                task.set_config(key="num_fewshot", value=self.spec.num_fewshot)
            elif task.get_config("num_fewshot") is None:
                task.set_config(key="num_fewshot", value=0)

    def _prepare(self, ts: TaskSpec, task: Task) -> str:
        """Check the metric key (adding a language gate if asked); return the key to score."""
        metric = ts.resolved_metric
        produced = self.produced_metrics(task)
        if metric is None:
            metric = produced[0]
        if metric not in produced:
            raise FitnessError(
                f"task {ts.name!r} does not produce metric {metric!r}; it produces: "
                f"{', '.join(produced)}"
            )
        name, filter_name = metric.split(",")
        if task.higher_is_better().get(name) is False:
            raise FitnessError(
                f"metric {metric!r} of task {ts.name!r} is lower-is-better; a fitness is "
                f"maximised: choose one of {produced}"
            )
        if ts.require_language:
            metric = self._add_language_gate(ts, task, name, filter_name)
        shots = task.get_config("num_fewshot") or 0
        pool = task.fewshot_docs()
        pool_size = (
            0 if pool is None else len(pool) if hasattr(pool, "__len__") else len(list(pool))
        )
        if shots > 0 and pool_size < shots:
            raise FitnessError(
                f"task {ts.name!r}: num_fewshot={shots} but its few-shot pool has fewer docs "
                "(local MGSM files carry no translated exemplars): use num_fewshot=0"
            )
        return metric

    @staticmethod
    def produced_metrics(task: Task) -> list[str]:
        """Every ``metric,filter`` key lm-eval will report for this task."""
        filters = task.config.filter_list or [{"name": "none"}]
        return [f"{m},{f['name']}" for f in filters for m in task.aggregation()]

    @staticmethod
    def _add_language_gate(ts: TaskSpec, task: Task, metric: str, filter_name: str) -> str:
        from lm_eval.filters import build_filter_ensemble

        from mergekit_evo.fitness.filters import LANGUAGE_FILTER

        if task.get_config("output_type") != "generate_until":
            raise FitnessError(
                f"require_language needs a generation task; {ts.name!r} is "
                f"{task.get_config('output_type')}"
            )
        base = next(f for f in task.config.filter_list if f["name"] == filter_name)
        gated = {
            "name": f"{filter_name}-lang_{ts.require_language}",
            "filter": [{"function": LANGUAGE_FILTER, "lang": ts.require_language}]
            + list(base["filter"]),
        }
        if all(f["name"] != gated["name"] for f in task.config.filter_list):
            components = [
                [f["function"], {k: v for k, v in f.items() if k != "function"}]
                for f in gated["filter"]
            ]
            task._filters.append(build_filter_ensemble(gated["name"], components))
            task.config.filter_list = [*task.config.filter_list, gated]
        return f"{metric},{gated['name']}"

    def sizes(self) -> dict[str, int]:
        """Questions per task in its split (what ``limit`` and slices count from)."""
        return {name: len(task.eval_docs) for name, task in self.tasks.items()}

    def check_sliceable(self, why: str) -> None:
        """Scores over slices (fitness rungs, a confirm slice) combine exactly only for metrics
        aggregated by a plain mean; refuse any other before a search starts."""
        from lm_eval.api.metrics import mean

        for name, key in self.metrics.items():
            agg = self.tasks[name].aggregation().get(key.split(",")[0])
            if agg is not mean:
                raise FitnessError(
                    f"{why} needs metrics aggregated by a plain mean (accuracy, exact match); "
                    f"task {name!r} aggregates {key!r} with {getattr(agg, '__name__', agg)!r}"
                )

    # ------------------------------------------------------------------ scoring
    def score(
        self,
        model: Any,
        tokenizer: Any,
        batch_size: int | None = None,
        docs: Mapping[str, range] | None = None,
        log_samples: bool = False,
    ) -> FitnessResult:
        """Score a ``transformers`` model and tokenizer in memory (no save, no reload).

        ``batch_size`` overrides the spec's for this call (the out-of-memory retry halves it);
        ``docs`` scores these questions of each task (a slice, :mod:`.slices`) instead of the
        first ``limit``; a task with an empty range is left out. ``log_samples`` keeps each
        document's prompt, response and score (``result.samples``).
        """
        lm = self.make_lm(model, tokenizer, batch_size)
        if self.spec.uses_engine():  # the engine checks its own logits (no hook in its graphs)
            return self.score_lm(lm, docs, log_samples)
        with _require_finite_logits(lm.model):
            return self.score_lm(lm, docs, log_samples)

    def make_lm(self, model: Any, tokenizer: Any, batch_size: int | None = None) -> LM:
        """lm-eval's ``hf`` model around ``model``, or ours (:mod:`.fast_lm`) per ``engine``."""
        device = self.spec.device
        if device is not None and hasattr(model, "to") and str(model.device) != device:
            model = model.to(device)
        if hasattr(model, "eval"):
            model.eval()  # no dropout: the same model must always get the same fitness
        batch = batch_size or self.spec.batch_size
        if self.spec.uses_engine():
            from mergekit_evo.fitness.fast_lm import EngineLM

            return EngineLM(
                pretrained=model,
                tokenizer=tokenizer,
                batch_size=batch,
                decoders=self.decoders,
                encodings=self._encodings.setdefault(_tokenizer_key(tokenizer), {}),
            )
        from lm_eval.models.huggingface import HFLM

        return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch)

    def score_lm(
        self, lm: LM, docs: Mapping[str, range] | None = None, log_samples: bool = False
    ) -> FitnessResult:
        """Score any lm-eval ``LM`` (used by ``score``, and by tests with scripted models)."""
        t0 = time.perf_counter()
        records: dict[str, list[dict[str, Any]]] | None = {} if log_samples else None
        per_task = self.evaluate_lm(lm, docs, records)
        scored = [t for t in self.spec.tasks if t.name in per_task]
        total = sum(t.weight for t in scored)
        score = (
            sum(t.weight * per_task[t.name][self.metrics[t.name]] for t in scored) / total
            if total > 0
            else math.nan
        )
        sizes = self.sizes()
        counts = {
            name: len(docs[name]) if docs is not None else limit_count(self.spec.limit, size)
            for name, size in sizes.items()
            if name in per_task
        }
        return FitnessResult(
            score=float(score),
            per_task=per_task,
            seconds=time.perf_counter() - t0,
            metrics=dict(self.metrics),
            counts=counts,
            samples=records,
        )

    def evaluate_lm(
        self,
        lm: LM,
        docs: Mapping[str, range] | None = None,
        records: dict[str, list[dict[str, Any]]] | None = None,
    ) -> dict[str, dict[str, float]]:
        """Run lm-eval on the built tasks: ``{task: {"metric,filter": float}}`` (no stderr).

        Calls lm-eval's ``evaluate`` (what ``simple_evaluate`` ends in) on the tasks built once;
        ``simple_evaluate`` would also collect pip/git environment info, ~0.5 s per candidate.
        ``docs``: lm-eval's ``samples`` (question indices per task) instead of ``limit``.
        ``records``, when given, is filled with each task's per-document records of the scored
        metric's filter (lm-eval's ``log_samples``).
        """
        from lm_eval.evaluator import evaluate

        tasks = self.tasks
        samples: dict[str, list[int]] | None = None
        if docs is not None:
            sizes = self.sizes()
            for name, r in docs.items():
                if r.start < 0 or r.stop > sizes[name]:
                    raise FitnessError(
                        f"task {name!r} has {sizes[name]} questions; cannot score "
                        f"[{r.start}, {r.stop})"
                    )
            # an empty list would make lm-eval score every question: such tasks are left out
            tasks = {n: t for n, t in self.tasks.items() if len(docs.get(n, ()))}
            samples = {n: list(docs[n]) for n in tasks}
            if not tasks:
                raise FitnessError("no question to score: every task's slice is empty")
        seed = self.spec.seed
        # deterministic scoring, caller's RNGs left as they were; Jinja templates compiled once
        with seeded_global_rng(seed), compiled_templates():
            for task in tasks.values():
                task.set_fewshot_seed(seed=seed)  # same few-shot draws for every candidate
            results = evaluate(
                lm=lm,
                task_dict={"tasks": tasks, "groups": {}, "group_map": {}},
                limit=None if samples is not None else self.spec.limit,
                samples=samples,
                bootstrap_iters=0,
                log_samples=records is not None,
            )
        if results is None:  # non-zero rank under a distributed launcher
            raise FitnessError("lm-eval returned no results (not the rank-0 process?)")
        per_task: dict[str, dict[str, float]] = {}
        for name in tasks:
            raw = results["results"][name]
            per_task[name] = {
                key: value
                for key, value in ((k, _to_float(v)) for k, v in raw.items())
                if value is not None and "," in key and "_stderr," not in key
            }
            if math.isnan(per_task[name].get(self.metrics[name], math.nan)):
                log.warning("task %s: metric %s is missing or NaN", name, self.metrics[name])
            if records is not None:
                filter_name = self.metrics[name].split(",")[1]
                logged = results.get("samples", {}).get(name, [])
                records[name] = [r for r in logged if r.get("filter") == filter_name]
        return per_task


@contextlib.contextmanager
def _require_finite_logits(model: Any) -> Iterator[None]:
    """NaN or inf logits (broken weights) fail the score instead of scoring as wrong answers."""
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    if head is None:
        yield
        return

    def check(_module: Any, _inputs: Any, out: Any) -> None:
        import torch

        if not bool(torch.isfinite(out).all()):
            raise FitnessError(
                "the model produced non-finite logits (NaN or inf): its weights are broken"
            )

    handle = head.register_forward_hook(check)
    try:
        yield
    finally:
        handle.remove()


def _tokenizer_key(tokenizer: Any) -> tuple:
    """Tokenizers that encode alike share cached token ids (a candidate may load its own)."""
    return (type(tokenizer).__name__, getattr(tokenizer, "name_or_path", ""), len(tokenizer))


def _reuse_requests(task: Task) -> None:
    """Build a task's requests once, not once per candidate (prompts never change).

    lm-eval's ``evaluate`` calls ``build_all_requests`` every time (few-shot sampling and a
    Jinja compile per document: ~0.5 s for 64 GSM8K questions); the same arguments give the
    same instances, so later calls reuse them with their responses cleared.
    """
    build = task.build_all_requests
    memo: dict[str, list] = {}

    def build_all_requests(**kwargs: Any) -> None:
        key = repr(sorted((k, repr(v)) for k, v in kwargs.items()))
        if key in memo:
            for inst in memo[key]:
                inst.resps.clear()
                inst.filtered_resps.clear()
            task._instances = list(memo[key])
            return
        build(**kwargs)
        memo[key] = list(task._instances or [])

    task.build_all_requests = build_all_requests  # type: ignore[method-assign]


@functools.lru_cache(maxsize=1024)
def _compiled_template(template: str) -> Any:
    from lm_eval import utils

    return utils.env.from_string(template)


def _apply_compiled_template(template: str, doc: dict) -> str:
    """``lm_eval.utils.apply_template`` with the template compiled once, not per document."""
    return _compiled_template(template).render(**doc)


@contextlib.contextmanager
def compiled_templates() -> Iterator[None]:
    """lm-eval's ``apply_template`` compiles its Jinja template on every call: GSM8K's target
    template once per question *and filter* (three).  Scoring 1,000 questions spent about half
    of its host time outside the decoder there (CPU, decoder stubbed: 6.6-8.3 s, 2.6-3.7 s with
    this).  Within the block each template is compiled once (same environment, same render);
    lm-eval's function is put back afterwards."""
    from lm_eval import utils

    original = utils.apply_template
    if original is _apply_compiled_template:  # nested
        yield
        return
    utils.apply_template = _apply_compiled_template
    try:
        yield
    finally:
        utils.apply_template = original


@contextlib.contextmanager
def keep_global_rng() -> Iterator[None]:
    """Restore the global random / numpy / torch RNG states after the block."""
    import random

    import numpy as np
    import torch

    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


@contextlib.contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """Seed the global random / numpy / torch RNGs for the block, then restore their states.

    lm-eval draws from the global RNGs, so scoring seeds them for reproducible scores; an
    optimiser in the same process that samples from them (pycma uses numpy's global RNG) must
    not see its stream reset by every evaluation.
    """
    import random

    import numpy as np
    import torch

    with keep_global_rng():
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        yield
