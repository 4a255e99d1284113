"""The ``ps_dfs`` recipe: parameter-space merges whose outputs are models of a DFS stage.

One YAML document.  The paper's form (Akiba et al., section 3.3: the PS champion is model A,
another source model is model B) uses ``models:`` for a single PS stage named ``ps``::

    merge_method: ps_dfs
    base_model: base
    models:                         # PS stage sources with the PS method's per-model params
      - model: math
        parameters: {weight: 0.7, density: 0.6}
      - model: lang
        parameters: {weight: 0.6, density: 0.5}
    parameters:
      ps_method: dare_ties          # any registered MergeKit method
      dfs_models: [ps, lang]        # stage names or model references; the first is model A
      repeats: 2
      indicators: [...]
      scales: [[...]]
      normalize: false              # any other key is a global parameter of the PS method

The top-k form puts several PS stages under ``modules:`` (one key per stage, each with
``models:`` and ``parameters:``, where ``ps_method`` may be overridden per stage) and lists the
stage names in ``dfs_models``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mergekit_evo.methods.dfs import (
    DFS_PARAMETER_NAMES,
    CompiledDFS,
    compile_dfs,
    load_model_configs,
)
from mergekit_evo.methods.errors import RecipeError
from mergekit_evo.methods.names import WHOLE_MODEL_METHODS

if TYPE_CHECKING:
    from mergekit.config import MergeConfiguration
    from mergekit.options import MergeOptions

PS_DFS_KEYS = (*DFS_PARAMETER_NAMES, "dfs_models", "ps_method")


@dataclass(frozen=True)
class PSDFSRecipe:
    """A parsed ``ps_dfs`` recipe: named PS stages and the DFS recipe over their outputs."""

    stages: dict[str, MergeConfiguration]
    dfs_models: tuple[str, ...]
    dfs_parameters: dict[str, Any]


def _check_method(name: Any, field: str) -> str:
    from mergekit.merge_methods import registry

    known = sorted(m.spec.name for m in registry.registered_methods())
    if not isinstance(name, str) or name in WHOLE_MODEL_METHODS or name not in known:
        valid = [k for k in known if k not in WHOLE_MODEL_METHODS]
        raise RecipeError(field, name, f"a parameter-space MergeKit method, one of {valid}")
    return name


def parse_ps_dfs(config: MergeConfiguration) -> PSDFSRecipe:
    """Split a ``ps_dfs`` recipe into PS stage configs and DFS parameters (no weights)."""
    from mergekit.config import MergeConfiguration

    params = dict(config.parameters or {})
    dfs_params = {k: params.pop(k) for k in DFS_PARAMETER_NAMES if k in params}
    dfs_models = params.pop("dfs_models", None)
    default_method = params.pop("ps_method", None)

    if config.models:
        stage_defs = {"ps": (config.models, {})}
    elif config.modules:
        stage_defs = {}
        for name, module in config.modules.items():
            if not module.models:
                raise RecipeError(f"modules.{name}.models", None, "a list of PS source models")
            stage_defs[name] = (module.models, dict(module.parameters or {}))
    else:
        raise RecipeError("models", None, "'models:' (one PS stage) or 'modules:' (named stages)")

    stages: dict[str, MergeConfiguration] = {}
    for name, (models, stage_params) in stage_defs.items():
        where = "parameters.ps_method" if name == "ps" else f"modules.{name}.parameters.ps_method"
        method = stage_params.pop("ps_method", default_method)
        if method is None:
            raise RecipeError(where, None, "the PS stage's MergeKit method, e.g. dare_ties")
        _check_method(method, where)
        stages[name] = MergeConfiguration(
            merge_method=method,
            models=models,
            base_model=config.base_model,
            parameters={**params, **stage_params} or None,
            dtype=config.dtype,
            out_dtype=config.out_dtype,
        )

    if (
        not isinstance(dfs_models, list)
        or not dfs_models
        or not all(isinstance(m, str) for m in dfs_models)
    ):
        raise RecipeError(
            "parameters.dfs_models",
            dfs_models,
            f"a list of DFS models, model A first: stage names {sorted(stages)} or model paths",
        )
    if not any(m in stages for m in dfs_models):
        raise RecipeError(
            "parameters.dfs_models", dfs_models, f"at least one PS stage name of {sorted(stages)}"
        )
    return PSDFSRecipe(stages=stages, dfs_models=tuple(dfs_models), dfs_parameters=dfs_params)


def _stage_output_config(stage: MergeConfiguration, trust_remote_code: bool) -> Any:
    """A PS merge keeps the architecture of its base (or first) model."""
    ref = stage.base_model or stage.models[0].model
    return load_model_configs([ref], trust_remote_code)[0]


def _compile_dfs_stage(
    config: MergeConfiguration, recipe: PSDFSRecipe, stage_root: Path, options: MergeOptions
) -> CompiledDFS:
    """The DFS stage over the (future) PS stage outputs, validated against their configs."""
    from mergekit.common import ModelReference
    from mergekit.config import InputModelDefinition, MergeConfiguration

    refs, configs = [], []
    for name in recipe.dfs_models:
        if name in recipe.stages:
            refs.append(ModelReference.parse(str(stage_root / name)))
            configs.append(_stage_output_config(recipe.stages[name], options.trust_remote_code))
        else:
            ref = ModelReference.parse(name)
            refs.append(ref)
            configs.extend(load_model_configs([ref], options.trust_remote_code))
    dfs_config = MergeConfiguration(
        merge_method="dfs",
        models=[InputModelDefinition(model=r) for r in refs],
        parameters=recipe.dfs_parameters,
        dtype=config.dtype,
        out_dtype=config.out_dtype,
        tokenizer_source=config.tokenizer_source,
        tokenizer=config.tokenizer,
        chat_template=config.chat_template,
    )
    return compile_dfs(dfs_config, options.trust_remote_code, model_configs=configs)


def run_ps_dfs(
    config: MergeConfiguration,
    out_path: str,
    options: MergeOptions,
    config_source: str,
    run_merge: Callable[..., Any],
) -> None:
    """Validate everything, run each PS stage, then the DFS stage over their outputs."""
    from mergekit_evo.methods.staging import evict_cached_loaders, run_passthrough, staged_output

    recipe = parse_ps_dfs(config)
    out = Path(out_path).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    # a fresh folder per run: MergeKit caches tensor loaders by model path for the whole process
    stage_root = Path(tempfile.mkdtemp(prefix=f".{out.name}.ps-stages-", dir=out.parent))
    try:
        compiled = _compile_dfs_stage(config, recipe, stage_root, options)  # before any weights
        for name in (n for n in recipe.stages if n in recipe.dfs_models):
            with staged_output(stage_root / name) as stage:
                run_merge(recipe.stages[name], str(stage), options=options)
        run_passthrough(compiled, out_path, options, config_source, run_merge)
    finally:
        evict_cached_loaders(stage_root)
        shutil.rmtree(stage_root, ignore_errors=True)
