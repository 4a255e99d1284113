"""Check, before any trial, that MergeKit accepts the recipe at the search's start point.

Catches mismatched architectures or bad fixed parameters while nothing is written yet, reading
only each model's config.json (no weights).
"""

from __future__ import annotations

from mergekit_evo.config import ConfigError, SearchConfig


def check_start_recipes(cfg: SearchConfig) -> None:
    """Raise :class:`ConfigError` if MergeKit (or the dfs compiler) rejects the start recipe."""
    from mergekit_evo.methods import RecipeError, load_recipe
    from mergekit_evo.methods.dfs import compile_dfs

    try:
        if cfg.mode in ("ps", "ps_dfs"):
            from mergekit_evo.space.ps import PSSpace

            for method in cfg.ps.methods:
                ps = PSSpace.from_config(cfg.for_method(method))
                load_recipe(ps.recipe(ps.vector.x0()))
        if cfg.mode == "dfs":
            from mergekit_evo.space.dfs import DFSSpace

            dfs = DFSSpace.from_config(cfg)
            compile_dfs(load_recipe(dfs.recipe(dfs.vector.x0())))
        if cfg.mode == "ps_dfs" and not cfg.ps_dfs.ps_candidates_multiplier:
            from mergekit_evo.space.dfs import DFSSpace

            ref = cfg.base_model or next(iter(cfg.models.values()))
            name = cfg.ps_dfs.partner or list(cfg.models)[-1]
            dfs = DFSSpace.from_config(
                cfg, model_paths=[ref, cfg.model_path(name)], labels=cfg.dfs_labels()
            )
            compile_dfs(load_recipe(dfs.recipe(dfs.vector.x0())))
    except RecipeError as e:
        field = {"ps": "ps", "dfs": "dfs.models", "ps_dfs": "ps_dfs.partner"}[cfg.mode]
        raise ConfigError([(field, f"MergeKit rejects the start recipe: {e}")]) from None
    except ValueError as e:  # MergeKit's own pydantic validation of the recipe
        if isinstance(e, ConfigError):
            raise
        raise ConfigError([("ps", f"MergeKit rejects the start recipe: {e}")]) from None
