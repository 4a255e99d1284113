"""MergeKit merge methods ``dfs`` and ``ps_dfs``.

Attributes are resolved lazily: :mod:`mergekit_evo.methods.install` runs from an import hook
*while MergeKit itself is importing*, so this package must not import ``mergekit.merge`` at
import time.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "RecipeError": "mergekit_evo.methods.errors",
    "DFSParameters": "mergekit_evo.methods.dfs",
    "DataFlowPath": "mergekit_evo.methods.dfs",
    "plan_path": "mergekit_evo.methods.dfs",
    "compile_dfs": "mergekit_evo.methods.dfs",
    "PSDFSRecipe": "mergekit_evo.methods.ps_dfs",
    "parse_ps_dfs": "mergekit_evo.methods.ps_dfs",
    "merge_recipe": "mergekit_evo.methods.run",
    "load_recipe": "mergekit_evo.methods.run",
    "ensure_installed": "mergekit_evo.methods.install",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
