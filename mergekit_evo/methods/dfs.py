"""The ``dfs`` recipe: an indicator array I picks a layer path, a matrix W scales each hop.

Semantics follow Akiba et al. (arXiv 2403.13187, section 3.2) as quoted in
``shared/reference/evolutionary-merge.md`` (not read from the PDF itself): all M layers of
all models are laid out in order (model 1, then model 2, ...), that layout repeated r times
gives T = M * r slots, and slot k is on the path iff I[k] > 0.  When the path goes from
layer i to layer j the hidden state entering j is multiplied by W[i][j]; the first layer
receives the embeddings unscaled.  Model A (the first model) supplies embeddings and
tokenizer, and by default the final norm and head too (the paper's form); ``head_model``
names another model for those two (a passthrough frankenmerge whose last slice is model B
takes B's: ``--from-recipe`` keeps that).

The recipe is compiled into MergeKit's own ``passthrough`` (one slice per run of layers,
``scale`` filters on the residual writers) so MergeKit writes the checkpoint.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mergekit_evo.methods.errors import RecipeError
from mergekit_evo.methods.folding import FoldingRule, folding_rule

if TYPE_CHECKING:
    from mergekit.config import MergeConfiguration
    from transformers import PretrainedConfig

DFS_PARAMETER_NAMES = ("repeats", "indicators", "scales", "pin_ends", "head_model")


class DFSParameters(BaseModel):
    """The ``parameters:`` block of a ``dfs`` recipe."""

    model_config = ConfigDict(extra="forbid")

    repeats: int = Field(3, ge=1, description="r: how often the layout of all layers repeats")
    indicators: list[float] = Field(description="I: T = M * r numbers; > 0 keeps the slot")
    scales: list[list[float]] | None = Field(
        None, description="W: M x M over layers, or n x n over models; None means all ones"
    )
    pin_ends: bool = Field(
        False, description="force the path to start with A's first and end with A's last layer"
    )
    head_model: int = Field(
        0,
        ge=0,
        description="index into models of the model whose final norm and lm_head the merge "
        "takes; 0: model A, as in the paper",
    )

    @classmethod
    def from_parameters(
        cls, parameters: dict[str, Any] | None, field: str = "parameters"
    ) -> DFSParameters:
        """Validate raw MergeKit parameters; errors name ``parameters.<field>``."""
        raw = dict(parameters or {})
        for key, value in raw.items():
            if not isinstance(value, (int, float, bool, list)) or (
                isinstance(value, list) and value and not isinstance(value[0], (int, float, list))
            ):
                raise RecipeError(
                    f"{field}.{key}", value, "a plain number, boolean or list (no filters)"
                )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            expected = err["msg"]
            if err["type"] == "extra_forbidden":
                expected = f"one of {list(DFS_PARAMETER_NAMES)}"
            elif err["type"] == "missing":
                expected = "a value (this field is required)"
            raise RecipeError(f"{field}.{loc}", err.get("input"), expected) from None


@dataclass(frozen=True)
class LayerRef:
    """One layer of one source model."""

    model: int
    layer: int


@dataclass(frozen=True)
class DataFlowPath:
    """The layers of the merged model in order, with the scale applied when entering each."""

    layers: tuple[LayerRef, ...]
    hop_scales: tuple[float, ...]

    @property
    def residual_factors(self) -> tuple[float, ...]:
        """1 / (product of all scales up to and including each position): the fold factor."""
        factors, running = [], 1.0
        for s in self.hop_scales:
            running *= s
            factors.append(1.0 / running)
        return tuple(factors)

    def __len__(self) -> int:
        return len(self.layers)


def slot_layout(layer_counts: Sequence[int], repeats: int) -> list[LayerRef]:
    """Slot k -> the layer it stands for: all of model 1, model 2, ..., repeated r times."""
    one = [LayerRef(m, i) for m, n in enumerate(layer_counts) for i in range(n)]
    return one * repeats


def expand_scales(
    scales: Sequence[Sequence[float]] | None, layer_counts: Sequence[int]
) -> list[list[float]]:
    """W as M x M; a compact n x n (per model pair) form is expanded block-wise."""
    total = sum(layer_counts)
    n = len(layer_counts)
    if scales is None:
        return [[1.0] * total for _ in range(total)]
    for i, row in enumerate(scales):  # indices as the user wrote them (compact or full)
        for j, value in enumerate(row):
            if not (math.isfinite(value) and value > 0):
                raise RecipeError(
                    f"parameters.scales[{i}][{j}]", value, "a finite scale > 0 (W folds by 1/s)"
                )
    rows = len(scales)
    cols = {len(r) for r in scales}
    if rows == total and cols == {total}:
        full = [list(map(float, r)) for r in scales]
    elif rows == n and cols == {n}:
        owner = [m for m, c in enumerate(layer_counts) for _ in range(c)]
        full = [[float(scales[owner[i]][owner[j]]) for j in range(total)] for i in range(total)]
    else:
        shape = f"{rows} x {sorted(cols) if len(cols) != 1 else next(iter(cols), 0)}"
        raise RecipeError(
            "parameters.scales",
            f"shape {shape}",
            f"M x M = {total} x {total} (layers) or n x n = {n} x {n} (models)",
        )
    return full


def plan_path(layer_counts: Sequence[int], params: DFSParameters) -> DataFlowPath:
    """Turn I and W into the concrete layer path; all checks, no weights."""
    total = sum(layer_counts)
    slots = total * params.repeats
    if len(params.indicators) != slots:
        raise RecipeError(
            "parameters.indicators",
            f"{len(params.indicators)} values",
            f"T = M * r = {total} * {params.repeats} = {slots} values "
            f"(M = total layers of all models, {list(layer_counts)})",
        )
    for k, v in enumerate(params.indicators):
        if not math.isfinite(v):
            raise RecipeError(f"parameters.indicators[{k}]", v, "a finite number")
    layout = slot_layout(layer_counts, params.repeats)
    path = [layout[k] for k, v in enumerate(params.indicators) if v > 0]
    if params.pin_ends:
        first, last = LayerRef(0, 0), LayerRef(0, layer_counts[0] - 1)
        if not path or path[0] != first:
            path.insert(0, first)
        if path[-1] != last:
            path.append(last)
    if not path:
        raise RecipeError(
            "parameters.indicators", "no value > 0", "at least one slot > 0 (the path is empty)"
        )
    w = expand_scales(params.scales, layer_counts)
    offset = [sum(layer_counts[:m]) for m in range(len(layer_counts))]
    glob = [offset[ref.model] + ref.layer for ref in path]
    hops = [1.0] + [w[glob[t - 1]][glob[t]] for t in range(1, len(glob))]
    return DataFlowPath(layers=tuple(path), hop_scales=tuple(hops))


# Fields that must agree for layers of different models to be chained.
_COMPATIBLE_FIELDS = (
    "model_type",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
)


def check_compatible(configs: Sequence[PretrainedConfig]) -> FoldingRule:
    """Same architecture family and shapes; returns model A's folding rule."""
    ref = configs[0]
    rule = folding_rule(getattr(ref, "model_type", "?"))
    for m, cfg in enumerate(configs[1:], start=1):
        for key in _COMPATIBLE_FIELDS:
            a, b = getattr(ref, key, None), getattr(cfg, key, None)
            if a != b:
                raise RecipeError(f"models[{m}].{key}", b, f"{a!r}, as in models[0] (model A)")
    return rule


def _layer_count(cfg: PretrainedConfig, m: int) -> int:
    n = getattr(cfg, "num_hidden_layers", None)
    if not isinstance(n, int) or n < 1:
        raise RecipeError(f"models[{m}].num_hidden_layers", n, "a positive layer count")
    return n


def absolute_reference(ref: Any) -> Any:
    """Local model folders as absolute paths.

    MergeKit's model card asks the Hugging Face hub about any *relative* path that exists
    locally, which fails offline; the compiled recipe is ours, so it names folders absolutely.
    """
    path = ref.model.path
    if os.path.isdir(path) and not os.path.isabs(path):
        return ref.model_copy(
            update={"model": ref.model.model_copy(update={"path": os.path.abspath(path)})}
        )
    return ref


def _models_form(config: MergeConfiguration, method: str) -> list:
    if not config.models or config.slices or config.modules:
        raise RecipeError(
            "models", None, f"a 'models:' list ({method} builds its own slices; model A first)"
        )
    return [absolute_reference(m.model) for m in config.models]


def load_model_configs(models: Sequence[Any], trust_remote_code: bool = False) -> list:
    """Each model's HF config (config.json only: no weights are read)."""
    configs = []
    for m, ref in enumerate(models):
        try:
            configs.append(ref.config(trust_remote_code=trust_remote_code))
        except Exception as exc:  # noqa: BLE001 - any loader failure is a bad reference here
            raise RecipeError(f"models[{m}].model", str(ref), f"a loadable model ({exc})") from exc
    return configs


@dataclass(frozen=True)
class CompiledDFS:
    """A ``dfs`` recipe lowered to MergeKit ``passthrough``, plus what the output needs."""

    passthrough: MergeConfiguration
    path: DataFlowPath
    per_layer_config: dict[str, list[Any]]


def compile_dfs(
    config: MergeConfiguration,
    trust_remote_code: bool = False,
    model_configs: Sequence[PretrainedConfig] | None = None,
) -> CompiledDFS:
    """Validate a ``dfs`` recipe and lower it to ``passthrough`` slices with W folded in.

    ``model_configs`` stands in for models that do not exist yet (a PS stage's output).
    """
    from mergekit.config import (
        ConditionalParameter,
        InputSliceDefinition,
        MergeConfiguration,
        OutputSliceDefinition,
    )

    models = _models_form(config, "dfs")
    params = DFSParameters.from_parameters(config.parameters)
    configs = list(model_configs or load_model_configs(models, trust_remote_code))
    rule = check_compatible(configs)
    counts = [_layer_count(c, m) for m, c in enumerate(configs)]
    path = plan_path(counts, params)
    head = params.head_model
    if head >= len(models):
        raise RecipeError(
            "parameters.head_model", head, f"an index into models, 0..{len(models) - 1}"
        )

    # runs of consecutive layers of one model with one fold factor become one slice
    runs: list[tuple[int, int, int, float]] = []  # model, start, end, factor
    for ref, factor in zip(path.layers, path.residual_factors, strict=True):
        if runs:
            m, start, end, f = runs[-1]
            if m == ref.model and end == ref.layer and f == factor:
                runs[-1] = (m, start, end + 1, f)
                continue
        runs.append((ref.model, ref.layer, ref.layer + 1, factor))
    # passthrough takes embeddings from the first slice's model and the final norm and head
    # from the last slice's: an empty slice of model A (of head_model) at either end pins them
    if runs[0][0] != 0:
        runs.insert(0, (0, 0, 0, 1.0))
    if runs[-1][0] != head:
        runs.append((head, counts[head], counts[head], 1.0))

    slices = []
    for m, start, end, factor in runs:
        slice_params = None
        if factor != 1.0:
            slice_params = {
                "scale": [
                    ConditionalParameter(filter=f, value=factor) for f in rule.residual_writers
                ]
            }
        slices.append(
            OutputSliceDefinition(
                sources=[
                    InputSliceDefinition(
                        model=models[m], layer_range=(start, end), parameters=slice_params
                    )
                ]
            )
        )
    passthrough = MergeConfiguration(
        merge_method="passthrough",
        slices=slices,
        base_model=models[0],
        dtype=config.dtype,
        out_dtype=config.out_dtype,
        tokenizer_source=config.tokenizer_source,
        tokenizer=config.tokenizer,
        chat_template=config.chat_template,
    )
    per_layer: dict[str, list[Any]] = {}
    for key in ("layer_types",):
        sources = [getattr(c, key, None) for c in configs]
        if all(isinstance(s, list) and len(s) == n for s, n in zip(sources, counts, strict=True)):
            per_layer[key] = [sources[ref.model][ref.layer] for ref in path.layers]
    return CompiledDFS(passthrough=passthrough, path=path, per_layer_config=per_layer)
