"""Running recipes: ``load_recipe`` and ``merge_recipe`` (any MergeKit recipe, ``dfs`` and
``ps_dfs`` included).

Every recipe is validated (shapes, paths, scales, architecture) before any weights load, and
written into a staging folder beside ``out_path`` that only replaces it on success: a failed
or invalid merge leaves nothing half-written behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from mergekit_evo.methods.errors import RecipeError
from mergekit_evo.methods.install import ensure_installed
from mergekit_evo.methods.lowering import wrap_run_merge
from mergekit_evo.methods.names import WHOLE_MODEL_METHODS
from mergekit_evo.methods.staging import (
    evict_cached_loaders,
    run_passthrough,
    staged_output,
    wrap_model_out_config,
)

if TYPE_CHECKING:
    from mergekit.config import MergeConfiguration
    from mergekit.options import MergeOptions

__all__ = [
    "evict_cached_loaders",
    "load_recipe",
    "merge_recipe",
    "run_passthrough",
    "staged_output",
    "wrap_model_out_config",
    "wrap_run_merge",
]


def load_recipe(recipe: MergeConfiguration | dict | str | os.PathLike) -> MergeConfiguration:
    """A ``MergeConfiguration`` from an object, a dict, or a YAML file path."""
    ensure_installed()
    from mergekit.config import MergeConfiguration
    from pydantic import ValidationError

    if isinstance(recipe, MergeConfiguration):
        return recipe
    data = recipe
    if isinstance(recipe, (str, os.PathLike)):
        path = Path(recipe)
        if not path.is_file():
            raise RecipeError("recipe", str(recipe), "a path to a MergeKit YAML file")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise RecipeError("recipe", type(data).__name__, "a YAML mapping (MergeKit config)")
    try:
        return MergeConfiguration.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise RecipeError(loc or "recipe", err.get("input"), err["msg"]) from None


def merge_recipe(
    recipe: MergeConfiguration | dict | str | os.PathLike,
    out_path: str | os.PathLike,
    options: MergeOptions | None = None,
) -> Path:
    """Run any MergeKit recipe, ``dfs`` and ``ps_dfs`` included, through MergeKit."""
    config = load_recipe(recipe)
    import mergekit.merge
    from mergekit.options import MergeOptions

    options = options or MergeOptions(quiet=True)
    source = None
    if isinstance(recipe, (str, os.PathLike)):
        source = Path(recipe).read_text(encoding="utf-8")
    if config.merge_method in WHOLE_MODEL_METHODS:
        mergekit.merge.run_merge(config, str(out_path), options=options, config_source=source)
    else:
        with staged_output(out_path) as stage:
            mergekit.merge.run_merge(config, str(stage), options=options, config_source=source)
    return Path(out_path)
