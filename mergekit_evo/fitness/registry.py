"""The shipped lm-eval tasks: names, splits, sizes, YAML folder, and the split discipline.

The YAML files in ``tasks/`` are rendered from :data:`SHIPPED_TASKS` by :func:`write_task_yaml`
(``python -m mergekit_evo.fitness.registry``); a test checks that the files on disk match.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mergekit_evo.fitness.data import (
    GSM8K_SEARCH_ROWS,
    MGSM_HELDOUT_ROWS,
    MGSM_LANGUAGES,
    MGSM_SEARCH_ROWS,
    MGSM_SIZE,
)

#: Pass this folder to ``TaskManager(include_path=...)`` or ``lm_eval --include_path``.
TASKS_DIR = Path(__file__).parent / "tasks"
NUMERIC_FILTER_NAME = "numeric"
#: Splits that measure final quality: never searched on unless explicitly allowed.
REPORT_SPLITS = ("test", "heldout")
Split = Literal["test", "search", "heldout"]

_LANG_NAMES = {
    "bn": "Bengali", "de": "German", "en": "English", "es": "Spanish", "fr": "French",
    "ja": "Japanese", "ru": "Russian", "sw": "Swahili", "te": "Telugu", "th": "Thai",
    "zh": "Chinese",
}  # fmt: skip


@dataclass(frozen=True)
class ShippedTask:
    """One shipped lm-eval task and where its rows come from."""

    name: str
    split: Split
    size: int
    description: str
    base_config: str | None
    dataset: str
    test_split: str
    fewshot_split: str | None = None
    dataset_kwargs: dict[str, str] = field(default_factory=dict)
    loglik: bool = False
    language: str | None = None

    @property
    def default_metric(self) -> str:
        """Metric key (lm-eval's ``metric,filter``) a fitness uses when none is given."""
        return "loglik,none" if self.loglik else f"exact_match,{NUMERIC_FILTER_NAME}"

    @property
    def yaml_path(self) -> Path:
        return TASKS_DIR / f"{self.name}.yaml"


def _build() -> dict[str, ShippedTask]:
    n_search, n_held = len(MGSM_SEARCH_ROWS), len(MGSM_HELDOUT_ROWS)
    s0, s1 = MGSM_SEARCH_ROWS.start, MGSM_SEARCH_ROWS.stop - 1
    h0, h1 = MGSM_HELDOUT_ROWS.start, MGSM_HELDOUT_ROWS.stop - 1
    g1 = GSM8K_SEARCH_ROWS.stop - 1
    tasks = [
        ShippedTask(
            "evo_gsm8k",
            "test",
            1319,
            "GSM8K test, lm-eval gsm8k prompt (5-shot from train)",
            "gsm8k/gsm8k.yaml",
            "gsm8k_dataset",
            "test",
            "train",
            language="en",
        ),
        ShippedTask(
            "evo_gsm8k_search",
            "search",
            len(GSM8K_SEARCH_ROWS),
            f"GSM8K train rows 0-{g1}, gsm8k prompt, few-shot from the other train rows",
            "gsm8k/gsm8k.yaml",
            "gsm8k_dataset",
            "search",
            "search_fewshot",
            language="en",
        ),
        ShippedTask(
            "evo_gsm8k_search_loglik",
            "search",
            len(GSM8K_SEARCH_ROWS),
            f"GSM8K train rows 0-{g1}: log P(gold final answer | question), no generation",
            "gsm8k/gsm8k.yaml",
            "gsm8k_dataset",
            "search",
            "search_fewshot",
            loglik=True,
            language="en",
        ),
    ]
    for lang in MGSM_LANGUAGES:
        name = _LANG_NAMES[lang]
        kw = {"lang": lang}
        direct = f"mgsm/direct/mgsm_direct_{lang}.yaml"
        tasks += [
            ShippedTask(
                f"evo_mgsm_direct_{lang}",
                "test",
                MGSM_SIZE,
                f"MGSM {name}, all 250, lm-eval mgsm_direct prompt",
                direct,
                "mgsm_dataset",
                "test",
                dataset_kwargs=kw,
                language=lang,
            ),
            ShippedTask(
                f"evo_mgsm_native_cot_{lang}",
                "test",
                MGSM_SIZE,
                f"MGSM {name}, all 250, lm-eval mgsm_native_cot prompt",
                f"mgsm/native_cot/mgsm_native_cot_{lang}.yaml",
                "mgsm_dataset",
                "test",
                dataset_kwargs=kw,
                language=lang,
            ),
            ShippedTask(
                f"evo_mgsm_direct_{lang}_search",
                "search",
                n_search,
                f"MGSM {name} rows {s0}-{s1}, mgsm_direct prompt",
                direct,
                "mgsm_dataset",
                "search",
                dataset_kwargs=kw,
                language=lang,
            ),
            ShippedTask(
                f"evo_mgsm_direct_{lang}_heldout",
                "heldout",
                n_held,
                f"MGSM {name} rows {h0}-{h1} (disjoint from _search), mgsm_direct prompt",
                direct,
                "mgsm_dataset",
                "heldout",
                dataset_kwargs=kw,
                language=lang,
            ),
            ShippedTask(
                f"evo_mgsm_direct_{lang}_search_loglik",
                "search",
                n_search,
                f"MGSM {name} rows {s0}-{s1}: log P(gold answer | question), no generation",
                direct,
                "mgsm_dataset",
                "search",
                dataset_kwargs=kw,
                loglik=True,
                language=lang,
            ),
        ]
    return {t.name: t for t in tasks}


#: Every shipped task by name.
SHIPPED_TASKS: dict[str, ShippedTask] = _build()


def shipped_task(name: str) -> ShippedTask | None:
    """The shipped task called ``name``, or None."""
    return SHIPPED_TASKS.get(name)


def is_report_split(task_name: str) -> bool:
    """Whether a task scores a report split (test or held-out) that a search must not optimise.

    Shipped tasks say so themselves (only the ``_search`` ones are searchable). Any other task is
    a report split (stock lm-eval tasks such as ``gsm8k`` or ``mgsm_direct_ja`` evaluate their
    published eval split) unless its name marks it as a search split: it ends in ``_search`` or
    contains ``_search_`` (e.g. the zoo's ``zoo_target_search``).
    """
    task = SHIPPED_TASKS.get(task_name)
    if task is not None:
        return task.split in REPORT_SPLITS
    return not (task_name.endswith("_search") or "_search_" in task_name)


def close_matches(name: str, candidates: list[str] | None = None, n: int = 5) -> list[str]:
    """Task names that look like ``name`` (for error messages)."""
    return difflib.get_close_matches(name, candidates or list(SHIPPED_TASKS), n=n, cutoff=0.6)


_NUMERIC_FILTER_YAML = f"""extra_filter_list:
  - name: {NUMERIC_FILTER_NAME}
    filter:
      - function: evo_numeric
      - function: take_first
"""


def render_task_yaml(task: ShippedTask) -> str:
    """The YAML text of one shipped task."""
    lines = [
        f"# Generated by mergekit_evo.fitness.registry ({task.split} split, {task.size} rows).",
        f"# {task.description}",
        f"task: {task.name}",
        "class: !function mergekit_evo.fitness.lmeval_task.EvoTask",
    ]
    if task.base_config:
        lines.append(f"base_config: {task.base_config}")
    lines.append(f"custom_dataset: !function mergekit_evo.fitness.data.{task.dataset}")
    if task.dataset_kwargs:
        kw = ", ".join(f"{k}: {v}" for k, v in task.dataset_kwargs.items())
        lines.append(f"dataset_kwargs: {{{kw}}}")
    lines.append(f"test_split: {task.test_split}")
    if task.fewshot_split:
        lines.append(f"fewshot_split: {task.fewshot_split}")
    text = "\n".join(lines) + "\n"
    if task.loglik:
        # lm-eval (0.4.13) ignores target_delimiter for output_type loglikelihood, so the
        # space between "Answer:" and the number is part of the target itself.
        target = (
            "\" {{answer.split('####')[-1].strip()}}\""
            if task.dataset == "gsm8k_dataset"
            else "' {{answer_number|string}}'"
        )
        text += f"""output_type: loglikelihood
doc_to_target: {target}
target_delimiter: ""
num_fewshot: null
generation_kwargs: null
filter_list: null
process_results: !function mergekit_evo.fitness.lmeval_task.loglik_results
metric_list:
  - metric: loglik
    aggregation: mean
    higher_is_better: true
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
    else:
        text += _NUMERIC_FILTER_YAML
    text += f"metadata:\n  version: 1.0\n  split: {task.split}\n  size: {task.size}\n"
    return text


def write_task_yaml() -> list[Path]:
    """(Re)write every shipped YAML file and drop stale ones; returns the written paths."""
    TASKS_DIR.mkdir(exist_ok=True)
    wanted = {t.yaml_path for t in SHIPPED_TASKS.values()}
    for stale in set(TASKS_DIR.glob("*.yaml")) - wanted:
        stale.unlink()
    for task in SHIPPED_TASKS.values():
        task.yaml_path.write_text(render_task_yaml(task), encoding="utf-8")
    return sorted(wanted)


if __name__ == "__main__":
    for path in write_task_yaml():
        print(path)
