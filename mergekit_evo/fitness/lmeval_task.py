"""The lm-eval task class behind every shipped YAML: lm-eval's own config + our overrides.

lm-eval's ``include:`` takes a file path relative to the including YAML (or absolute). Our YAML
and lm-eval's live in different trees (an editable install puts ours in the checkout, a wheel in
site-packages), so no fixed relative path reaches lm-eval's files. Instead each shipped YAML names
``base_config: gsm8k/gsm8k.yaml`` (a path under the installed ``lm_eval/tasks``) and this class
merges it under the shipped keys exactly as ``include:`` would (shipped keys win), so prompts,
stop sequences, filters and metrics stay lm-eval's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lm_eval.api.task import ConfigurableTask

import mergekit_evo.fitness.filters  # noqa: F401  (registers evo_numeric, evo_language_gate)

_STRUCTURAL = ("task", "tag", "group", "task_alias", "task_list", "class")


def lm_eval_tasks_dir() -> Path:
    """Folder of lm-eval's built-in task YAML."""
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def load_base_config(base_config: str) -> dict[str, Any]:
    """lm-eval's YAML config (with its own includes resolved), less naming/grouping keys."""
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(lm_eval_tasks_dir() / base_config, resolve_func=True)
    for key in _STRUCTURAL:
        cfg.pop(key, None)
    return cfg


def merge_config(config: dict[str, Any]) -> dict[str, Any]:
    """Shipped config -> full lm-eval TaskConfig dict (``base_config`` and extras resolved)."""
    cfg = dict(config)
    cfg.pop("class", None)
    base_name = cfg.pop("base_config", None)
    extra_filters = cfg.pop("extra_filter_list", None) or []
    base = load_base_config(base_name) if base_name else {}
    merged = {**base, **cfg}
    merged["metadata"] = {**(base.get("metadata") or {}), **(cfg.get("metadata") or {})}
    if extra_filters:
        merged["filter_list"] = list(merged.get("filter_list") or []) + list(extra_filters)
    return merged


class EvoTask(ConfigurableTask):
    """A ``ConfigurableTask`` whose config is built on an lm-eval base config (see module doc)."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(config=merge_config(config or {}), **kwargs)


def loglik_results(doc: dict[str, Any], results: list[tuple[float, bool]]) -> dict[str, float]:
    """Loglikelihood proxy: log P(gold answer | question) and whether it is the greedy answer."""
    ll, is_greedy = results[0]
    return {"loglik": float(ll), "acc": float(is_greedy)}
