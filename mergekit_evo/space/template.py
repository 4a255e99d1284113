"""PS genome shaped by a given MergeKit recipe: the recipe's own numbers are the coordinates.

A community recipe (``models:`` or ``slices:`` form, per-model scalars, per-layer gradient lists,
tensor filters with a fallback value, top-level ``density``/``lambda``/``t``...) is kept as the
template; every float parameter of its merge method becomes one evolved coordinate per number
the recipe writes, started at that number.  Everything else (booleans such as ``normalize`` or
``int8_mask``, ``layer_range``, ``tokenizer_source``, ``dtype``, unknown keys) is copied as is.
So the start point's recipe *is* the given recipe, value for value, and the search can only
improve on it (it is trial 0).
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from mergekit_evo.config import ConfigError, SearchConfig
from mergekit_evo.recipe_paths import recipe_models
from mergekit_evo.space.vector import Dim, VectorSpace

#: search range per parameter name, widened to hold the recipe's own value
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "weight": (0.0, 1.0),
    "density": (0.0, 1.0),
    "t": (0.0, 1.0),
    "lambda": (0.0, 2.0),
    "epsilon": (0.0, 0.2),
    "gamma": (0.0, 0.1),
    "select_topk": (0.0, 1.0),
}
#: float parameters that are numerical tolerances, not recipe choices: never evolved
NOT_EVOLVED = frozenset({"eps", "tol"})
#: recipe sections that set their own structure, so the PS options that shape one conflict
_SHAPE_OPTIONS = ("granularity", "filters", "normalize_weights", "fixed", "x0", "global_parameters")

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Slot:
    """One number of the template: where it sits in the recipe and what it is called."""

    path: Path_
    name: str
    param: str
    value: float


def float_params(method: str) -> dict[str, str]:
    """``{name: scope}`` of a registered MergeKit method's float parameters."""
    from mergekit.merge_methods import registry

    try:
        spec = registry.get(method).spec
    except Exception:
        raise ConfigError(
            [("ps.recipe.merge_method", f"unknown merge method {method!r}")]
        ) from None
    return {p.name: p.scope.value for p in spec.parameters if p.value_type is float}


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _label(path: str, names: dict[str, str]) -> str:
    return names.get(path) or os.path.basename(str(path).rstrip("/")) or str(path)


def find_slots(recipe: dict[str, Any], names: dict[str, str], evolve: set[str]) -> list[Slot]:
    """Every number of an evolved parameter in ``recipe``, in document order.

    ``names`` maps model paths to short labels; a number under ``slices[j]`` is prefixed
    ``s{j}.``; a filter entry adds ``[filter]`` (``[*]`` for the fallback) and a gradient
    list element ``[i]``.
    """
    out: list[Slot] = []

    def params(block: Any, path: Path_, prefix: str) -> None:
        if not isinstance(block, dict):
            return
        for pname, value in block.items():
            if pname not in evolve:
                continue
            base = (*path, pname)
            stem = f"{prefix}{pname}"
            if isinstance(value, list) and value and all(isinstance(e, dict) for e in value):
                for k, entry in enumerate(value):
                    tag = entry.get("filter")
                    numbers(entry.get("value"), (*base, k, "value"), f"{stem}[{tag or '*'}]", pname)
            else:
                numbers(value, base, stem, pname)

    def numbers(value: Any, path: Path_, name: str, pname: str) -> None:
        if _is_num(value):
            out.append(Slot(path, name, pname, float(value)))
        elif isinstance(value, list) and all(_is_num(e) for e in value):
            for i, e in enumerate(value):
                out.append(Slot((*path, i), f"{name}[{i}]", pname, float(e)))

    def models(entries: Any, path: Path_, prefix: str) -> None:
        for i, m in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(m, dict):
                label = _label(str(m.get("model", i)), names)
                params(m.get("parameters"), (*path, i, "parameters"), f"{prefix}{label}.")

    models(recipe.get("models"), ("models",), "")
    for j, sl in enumerate(recipe.get("slices") or []):
        if isinstance(sl, dict):
            models(sl.get("sources"), ("slices", j, "sources"), f"s{j}.")
            params(sl.get("parameters"), ("slices", j, "parameters"), f"s{j}.")
    params(recipe.get("parameters"), ("parameters",), "")
    return out


def _set(doc: Any, path: Path_, value: float) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


class RecipeSpace:
    """Vector <-> a copy of the template recipe with its evolved numbers replaced."""

    name = "ps"

    def __init__(
        self,
        template: dict[str, Any],
        slots: list[Slot],
        bounds: dict[str, tuple[float, float]],
        sigma0: float,
        cma: bool,
    ) -> None:
        self.template = template
        self.slots = slots
        self.method = str(template["merge_method"])
        dims = []
        for s in slots:
            lo, hi = bounds.get(s.param, DEFAULT_BOUNDS.get(s.param, (0.0, 1.0)))
            dims.append(Dim(s.name, min(lo, s.value), max(hi, s.value), s.value))
        self.vector = VectorSpace(dims, sigma0=sigma0, cma=cma)

    @classmethod
    def from_config(cls, cfg: SearchConfig) -> RecipeSpace:
        """Build from ``ps.recipe``; raises :class:`ConfigError` naming the field."""
        ps = cfg.ps
        recipe = ps.recipe
        assert recipe is not None
        errors: list[tuple[str, str]] = []
        method = recipe.get("merge_method")
        if not isinstance(method, str):
            raise ConfigError([("ps.recipe.merge_method", "required: the recipe's merge method")])
        if method == "passthrough":
            raise ConfigError([("ps.recipe.merge_method", passthrough_message())])
        if method != ps.method and "method" in ps.model_fields_set:
            errors.append(
                (
                    "ps.method",
                    f"{ps.method!r} differs from the recipe's merge_method {method!r}; "
                    "remove ps.method (the recipe's method is searched)",
                )
            )
        for opt in _SHAPE_OPTIONS:
            if opt in ps.model_fields_set:
                errors.append(
                    (
                        f"ps.{opt}",
                        "the recipe (ps.recipe) sets its own structure and start values; "
                        "remove this option",
                    )
                )
        fparams = float_params(method)
        evolvable = {p for p in fparams if p not in NOT_EVOLVED}
        if ps.parameters is not None:
            for i, p in enumerate(ps.parameters):
                if p not in fparams:
                    errors.append(
                        (
                            f"ps.parameters.{i}",
                            f"{p!r} is not a float parameter of {method!r}; "
                            f"valid: {sorted(fparams)}",
                        )
                    )
            evolve = set(ps.parameters) & set(fparams)
        else:
            evolve = evolvable
        names = {p: n for n, p in cfg.models.items()}
        if cfg.base_model and cfg.base_model not in names:
            names[cfg.base_model] = "base"
        for where, path in recipe_models(recipe):
            if path not in names:
                errors.append(
                    (
                        f"ps.recipe.{where}",
                        f"{path!r} is neither a value of models: nor base_model "
                        "(the baselines and the report score those)",
                    )
                )
        if cfg.mode == "ps_dfs" and "slices" in recipe:
            errors.append(
                (
                    "ps.recipe.slices",
                    "a slices: recipe can start mode: ps only (ps_dfs embeds models:)",
                )
            )
        slots = find_slots(recipe, names, evolve)
        seen = {s.param for s in slots}
        for p in ps.bounds:
            if p not in seen:
                errors.append(
                    (f"ps.bounds.{p}", f"the recipe sets no {p!r}; evolved: {sorted(seen)}")
                )
        if not slots and not errors:
            errors.append(
                (
                    "ps.recipe",
                    f"the recipe sets no number of {sorted(evolve)}: nothing to evolve",
                )
            )
        dup = sorted({s.name for s in slots if [t.name for t in slots].count(s.name) > 1})
        if dup:
            errors.append(("ps.recipe", f"two numbers share the names {dup}; rename the models"))
        if errors:
            raise ConfigError(errors)
        return cls(
            template=recipe,
            slots=slots,
            bounds=dict(ps.bounds),
            sigma0=cfg.optimizer.sigma0,
            cma=cfg.optimizer.sampler == "cmaes",
        )

    def recipe(self, x: np.ndarray) -> dict[str, Any]:
        doc = copy.deepcopy(self.template)
        for s, v in zip(self.slots, x, strict=True):
            _set(doc, s.path, float(v))
        return doc

    def describe(self, x: np.ndarray) -> dict[str, float]:
        return {s.name: round(float(v), 6) for s, v in zip(self.slots, x, strict=True)}


def passthrough_message() -> str:
    """What a ``passthrough`` (frankenmerge) recipe cannot keep as a PS start."""
    return (
        "passthrough (a frankenmerge: layers stacked, nothing averaged) has no numbers for a "
        "parameter-space search to evolve; `mergekit-evo init --from-recipe` turns it into a "
        "DFS search from its layer path (mode: dfs, dfs.start_path)"
    )
