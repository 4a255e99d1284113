"""The one-call Python API for the paper's hybrid (PS+DFS) merge.

``hybrid_merge`` runs the PS stage, then the DFS stage over the PS champion and a partner
model (or the top-k PS candidates), and returns the champion recipe, its folder and
``metrics.json`` - the same run directory ``mergekit-evo search`` writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mergekit_evo.config import SearchConfig, load_search_config, parse_search_config
from mergekit_evo.search.run.runner import SearchResult, apply_overrides, run_search


def hybrid_merge(
    config: SearchConfig | dict[str, Any] | str | Path,
    out: str | Path,
    *,
    max_trials: int | None = None,
    device: str | None = None,
    seed: int | None = None,
    save_champion: bool = True,
    log: Any = print,
    fitness_fn: Any = None,
) -> SearchResult:
    """Run a PS+DFS search (``mode`` is forced to ``ps_dfs``); resumes if ``out`` has one.

    ``fitness_fn(model, tokenizer) -> float | dict``: a Python fitness instead of the config's
    lm-eval tasks (as the seed-style ``fitness_fn=evaluate_gsm8k``).
    """
    if isinstance(config, (str, Path)):
        cfg = load_search_config(config)
    elif isinstance(config, dict):
        if fitness_fn is not None:  # the callable stands for the fitness section's tasks
            from mergekit_evo.search.scoring.callable_scoring import function_name

            fitness = {"function": function_name(fitness_fn), **(config.get("fitness") or {})}
            config = {**config, "fitness": fitness}
        cfg = parse_search_config(config)  # run_search runs the preflight
    else:
        cfg = config
    cfg = cfg.model_copy(update={"mode": "ps_dfs"})
    cfg = apply_overrides(cfg, max_trials=max_trials, device=device, seed=seed)
    return run_search(cfg, out, save_champion=save_champion, log=log, fitness_fn=fitness_fn)
