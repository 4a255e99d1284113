"""PS+DFS genome: DFS over PS-stage outputs, emitted as one ``ps_dfs`` document.

Stage 2 of the paper's PS+DFS: the PS champion is model A and a chosen source model is model B
(``ps_dfs.partner``); or, with ``ps_candidates_multiplier: k``, the DFS models are the top-k
PS candidates, each a named PS stage under ``modules:``.  The PS part is fixed; only the DFS
vector evolves, so this space is a :class:`DFSSpace` with a different recipe wrapper.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mergekit_evo.config import SearchConfig, num_layers
from mergekit_evo.space.dfs import DFSSpace


class PSDFSSpace:
    """Vector (I, W) <-> ``ps_dfs`` recipe around fixed PS stage recipes."""

    name = "dfs"

    def __init__(
        self,
        cfg: SearchConfig,
        ps_recipes: list[dict[str, Any]],
        partner: str | None,
    ) -> None:
        if not ps_recipes:
            raise ValueError("PS+DFS needs at least one PS recipe (the PS champion)")
        self.ps_recipes = ps_recipes
        first = ps_recipes[0]
        self.stage_names = ["ps"] + [f"ps{k + 1}" for k in range(1, len(ps_recipes))]
        ref = first.get("base_model") or first["models"][0]["model"]
        ps_layers = num_layers(ref)
        dfs_models: list[str] = list(self.stage_names)
        counts = [ps_layers] * len(ps_recipes)
        labels = list(self.stage_names)
        aliases: dict[str, int] = {}
        if partner is not None:
            dfs_models.append(partner)
            counts.append(num_layers(partner))
            labels.append(partner.rstrip("/").rsplit("/", 1)[-1])
            for name, path in cfg.models.items():  # dfs.head_model may use its config name
                if path == partner:
                    aliases[name] = len(labels) - 1
        self.dfs_models = dfs_models
        self.dfs = DFSSpace.from_config(
            cfg, model_paths=dfs_models, layer_counts=counts, labels=labels, aliases=aliases
        )
        self.vector = self.dfs.vector
        self.dtype = cfg.dtype

    @staticmethod
    def _stage(recipe: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        params = dict(recipe.get("parameters") or {})
        return recipe["models"], params

    def recipe(self, x: np.ndarray) -> dict[str, Any]:
        first = self.ps_recipes[0]
        doc: dict[str, Any] = {"merge_method": "ps_dfs"}
        if first.get("base_model"):
            doc["base_model"] = first["base_model"]
        models0, params0 = self._stage(first)
        params: dict[str, Any] = {"ps_method": first["merge_method"]}
        if len(self.ps_recipes) == 1:
            doc["models"] = models0
            params.update(params0)
        else:
            modules = {}
            for name, r in zip(self.stage_names, self.ps_recipes, strict=True):
                models, p = self._stage(r)
                stage_params = {"ps_method": r["merge_method"], **p}
                modules[name] = {"models": models, "parameters": stage_params}
            doc["modules"] = modules
        params["dfs_models"] = list(self.dfs_models)
        params.update(self.dfs.parameters(x))
        doc["parameters"] = params
        doc["dtype"] = self.dtype
        if self.dfs.tokenizer_source is not None:
            doc["tokenizer_source"] = self.dfs.tokenizer_source
        return doc

    def describe(self, x: np.ndarray) -> dict[str, float]:
        return self.dfs.describe(x)
