"""Parameter-space (PS) genome: per-model numbers of any registered MergeKit method.

Like MergeKit's ``evo/genome.py``, but the method's parameter names and scopes come from
``mergekit.merge_methods.registry.get(name).spec`` instead of a hard-coded table, so any
method with float parameters works (linear, task_arithmetic, ties, dare_ties, della, slerp...).
The recipe is always in MergeKit's ``models:`` form (what ``ps_dfs`` embeds as its PS stage):
layer groups become per-layer gradient lists (one value per layer, so MergeKit's interpolation
lands exactly on each value) and tensor filters become conditional parameters
``[{filter: self_attn, value: x}, ..., {value: rest}]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from mergekit_evo.config import ConfigError, SearchConfig, num_layers
from mergekit_evo.space.template import RecipeSpace
from mergekit_evo.space.vector import Dim, VectorSpace

_DEFAULT_BOUNDS = (0.0, 1.0)


@dataclass(frozen=True)
class _Coord:
    model: str | None  # None: a global (shared) parameter
    param: str
    group: int
    filt: str | None


def _spec_params(method: str) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """(per-model float params, shared float params, spec) of a registered method."""
    from mergekit.merge_methods import registry

    try:
        m = registry.get(method)
    except Exception:
        valid = sorted(x.spec.name for x in registry.registered_methods() if hasattr(x, "spec"))
        raise ConfigError(
            [("ps.method", f"unknown merge method {method!r}; registered: {', '.join(valid)}")]
        ) from None
    spec = m.spec
    per_model: dict[str, Any] = {}
    shared: dict[str, Any] = {}
    for p in spec.parameters:
        if p.value_type is not float:
            continue
        (shared if p.scope.value == "shared" else per_model)[p.name] = p
    return per_model, shared, spec


def _is_missing(default: Any) -> bool:
    return type(default) is object


class PSSpace:
    """Vector <-> ``models:``-form MergeKit config for one method."""

    name = "ps"

    def __init__(
        self,
        method: str,
        models: list[tuple[str, str]],
        base_model: str | None,
        params: list[str],
        global_params: list[str],
        num_layers: int,
        group_size: int | None,
        filters: list[str],
        bounds: dict[str, tuple[float, float]],
        x0: float | dict[str, float],
        sigma0: float,
        cma: bool,
        normalize_weights: bool = False,
        fixed: dict[str, Any] | None = None,
        dtype: str = "float32",
    ) -> None:
        self.method = method
        self.models = models  # (name, path) of the models that get per-model parameters
        self.base_model = base_model
        self.params = params
        self.global_params = global_params
        self.num_layers = num_layers
        self.n_groups = 1 if group_size is None else num_layers // group_size
        self.group_size = group_size
        self.filters = filters
        self.normalize_weights = normalize_weights
        self.fixed = dict(fixed or {})
        self.dtype = dtype
        self.coords: list[_Coord] = []
        dims: list[Dim] = []
        sets: list[str | None] = [*filters, None] if filters else [None]
        for mname, _ in models:
            for p in params:
                for g in range(self.n_groups):
                    for f in sets:
                        self.coords.append(_Coord(mname, p, g, f))
        for p in global_params:
            self.coords.append(_Coord(None, p, 0, None))
        for c in self.coords:
            lo, hi = bounds.get(c.param, _DEFAULT_BOUNDS)
            start = x0.get(c.param, 0.5) if isinstance(x0, dict) else x0
            dims.append(Dim(self._dim_name(c), lo, hi, float(start)))
        self.vector = VectorSpace(dims, sigma0=sigma0, cma=cma)

    def _dim_name(self, c: _Coord) -> str:
        name = c.param if c.model is None else f"{c.model}.{c.param}"
        if self.n_groups > 1:
            name += f"@{c.group * (self.group_size or 0)}"
        if c.filt is not None:
            name += f"[{c.filt}]"
        return name

    @classmethod
    def from_config(cls, cfg: SearchConfig) -> PSSpace | RecipeSpace:
        """Build from a :class:`SearchConfig`; raises :class:`ConfigError` naming the field.

        With ``ps.recipe`` the recipe itself is the genome's shape (:class:`RecipeSpace`).
        """
        if cfg.ps.recipe is not None:
            return RecipeSpace.from_config(cfg)
        if isinstance(cfg.ps.method, list):
            raise ConfigError(
                [("ps.method", "a method choice is one space per method: cfg.for_method(name)")]
            )
        ps = cfg.ps
        per_model, shared, spec = _spec_params(ps.method)
        errors: list[tuple[str, str]] = []
        base_policy = spec.contract.base.value
        if base_policy == "required" and not cfg.base_model:
            errors.append(("base_model", f"merge method {ps.method!r} needs a base_model"))
        if ps.parameters is None:
            params = [p for p in ("weight", "density") if p in per_model]
            params += [
                p for p, s in per_model.items() if _is_missing(s.default) and p not in params
            ]
        else:
            params = list(ps.parameters)
        for i, p in enumerate(params):
            if p not in per_model:
                errors.append(
                    (
                        f"ps.parameters.{i}",
                        f"{p!r} is not a per-model float parameter of {ps.method!r}; "
                        f"valid: {sorted(per_model) or 'none'}",
                    )
                )
        global_params = list(ps.global_parameters)
        if not global_params and not params:
            global_params = [p for p, s in shared.items() if _is_missing(s.default)]
        for i, p in enumerate(global_params):
            if p not in shared:
                errors.append(
                    (
                        f"ps.global_parameters.{i}",
                        f"{p!r} is not a shared float parameter of {ps.method!r}; "
                        f"valid: {sorted(shared) or 'none'}",
                    )
                )
        for p, s in per_model.items():
            if _is_missing(s.default) and p not in params:
                errors.append(("ps.parameters", f"{ps.method!r} needs {p!r} per model; add it"))
        for p in ps.bounds:
            if p not in params and p not in global_params:
                errors.append(
                    (f"ps.bounds.{p}", f"{p!r} is not evolved; evolved: {params + global_params}")
                )
        if isinstance(ps.x0, dict):
            for p in ps.x0:
                if p not in params and p not in global_params:
                    errors.append(
                        (f"ps.x0.{p}", f"{p!r} is not evolved; evolved: {params + global_params}")
                    )
        if not params and not global_params:
            errors.append(("ps.parameters", f"{ps.method!r} has no float parameter to evolve"))
        if ps.normalize_weights and "weight" not in params:
            errors.append(("ps.normalize_weights", "needs 'weight' among ps.parameters"))
        # methods that ignore the base (linear, ...) get no base_model: MergeKit would
        # otherwise treat it as one more input needing a weight
        base = cfg.base_model if base_policy != "ignored" else None
        models = [(n, p) for n, p in cfg.models.items() if base is None or p != base]
        if base_policy == "required" and not models:
            errors.append(("models", "no source model besides base_model"))
        max_in = spec.contract.max_inputs
        n_inputs = len(models) + (1 if base and base_policy != "ignored" else 0)
        if max_in is not None and n_inputs > max_in:
            errors.append(("models", f"{ps.method!r} takes at most {max_in} models incl. base"))
        n_layers = 0
        if ps.granularity == "layers":
            ref = base or models[0][1]
            if os.path.isdir(ref):
                n_layers = num_layers(ref)
                if n_layers % ps.layer_group_size:
                    errors.append(
                        (
                            "ps.layer_group_size",
                            f"{ps.layer_group_size} does not divide the {n_layers} layers",
                        )
                    )
            else:
                errors.append(("ps.granularity", f"layers needs a local model folder: {ref!r}"))
        if errors:
            raise ConfigError(errors)
        return cls(
            method=ps.method,
            models=models,
            base_model=base,
            params=params,
            global_params=global_params,
            num_layers=n_layers,
            group_size=ps.layer_group_size if ps.granularity == "layers" else None,
            filters=list(ps.filters),
            bounds=dict(ps.bounds),
            x0=ps.x0,
            sigma0=cfg.optimizer.sigma0,
            cma=cfg.optimizer.sampler == "cmaes",
            normalize_weights=ps.normalize_weights,
            fixed=dict(ps.fixed),
            dtype=cfg.dtype,
        )

    # -- vector -> recipe -------------------------------------------------------------------

    def values(self, x: np.ndarray) -> dict[_Coord, float]:
        """Decoded values per coordinate, with weight normalisation applied."""
        vals = {c: float(v) for c, v in zip(self.coords, x, strict=True)}
        if self.normalize_weights:
            keys: dict[tuple[int, str | None], list[_Coord]] = {}
            for c in self.coords:
                if c.model is not None and c.param == "weight":
                    keys.setdefault((c.group, c.filt), []).append(c)
            for cs in keys.values():
                total = sum(vals[c] for c in cs)
                for c in cs:
                    vals[c] = vals[c] / total if total > 0 else 1.0 / len(cs)
        return vals

    def _setting(self, vals: dict[_Coord, float], model: str | None, param: str) -> Any:
        sets: list[str | None] = [*self.filters, None] if self.filters else [None]
        out = []
        for f in sets:
            per_group = [vals[_Coord(model, param, g, f)] for g in range(self.n_groups)]
            if self.n_groups > 1:
                assert self.group_size is not None
                value: Any = [v for v in per_group for _ in range(self.group_size)]
            else:
                value = per_group[0]
            out.append({"filter": f, "value": value} if f is not None else {"value": value})
        return out[0]["value"] if len(out) == 1 else out

    def recipe(self, x: np.ndarray) -> dict[str, Any]:
        vals = self.values(x)
        models = []
        for mname, path in self.models:
            params = {p: self._setting(vals, mname, p) for p in self.params}
            models.append({"model": path, "parameters": params})
        doc: dict[str, Any] = {"merge_method": self.method}
        if self.base_model:
            doc["base_model"] = self.base_model
        doc["models"] = models
        gparams = dict(self.fixed)
        for p in self.global_params:
            gparams[p] = vals[_Coord(None, p, 0, None)]
        if gparams:
            doc["parameters"] = gparams
        doc["dtype"] = self.dtype
        return doc

    def describe(self, x: np.ndarray) -> dict[str, float]:
        vals = self.values(x)
        return {self._dim_name(c): round(v, 6) for c, v in vals.items()}
