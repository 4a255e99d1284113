"""MergeKit's own plan of a recipe, tensor by tensor, without its loader or writer.

``MergePlanner`` resolves every tensor's parameters (filters, gradients, defaults) into an
``ExecuteMergeMethodTask``; executing that task on tensors already in GPU memory is MergeKit's
per-tensor merge with none of the graph's disk I/O.  (MergeKit's own ``plan_in_memory`` fails
in 0.1.5, the reason ``mergekit-evolve``'s in-memory mode is broken.)

Planning a 24-layer model costs ~130 ms on a slow CPU, nearly all of it in
``resolve_parameters`` re-validating the same per-layer gradient list for each of a layer's
twelve tensors.  A tensor's resolved parameters depend on its name only through which of the
recipe's ``filter`` strings it contains, so calls that agree on that (and on slice, ``t`` and
inputs) are resolved once and shared.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mergekit.architecture import WeightInfo
    from mergekit.config import MergeConfiguration
    from mergekit.merge_methods.task_adapter import ExecuteMergeMethodTask
    from mergekit.options import MergeOptions


def _filters(value: Any, out: set[str]) -> set[str]:
    """Every ``filter:`` string anywhere in a parameters block."""
    if isinstance(value, dict):
        f = value.get("filter")
        if isinstance(f, str):
            out.add(f)
        for v in value.values():
            _filters(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _filters(v, out)
    return out


def _signature(filters: list[str], name: str | None) -> tuple[bool, ...]:
    """Which of the recipe's filter strings a tensor name contains: all its parameters see."""
    return tuple(bool(name) and f in name for f in filters)


@dataclass(frozen=True)
class ResolveCall:
    """The arguments the planner resolved one output tensor's parameters with."""

    tensor_name: str
    inputs: dict[Any, str]  # model reference -> that model's tensor name
    base_model: Any
    t: float


@contextlib.contextmanager
def _shared_resolution(
    filters: set[str], record: list[ResolveCall] | None = None
) -> Iterator[None]:
    import mergekit.plan as plan

    original = plan.resolve_parameters
    memo: dict[Any, Any] = {}
    ordered = sorted(filters)

    def signature(name: str | None) -> tuple[bool, ...]:
        return _signature(ordered, name)

    def resolve(spec, *, tensor_name, inputs, sources, base_model=None, t=0):
        if record is not None:
            record.append(ResolveCall(tensor_name, dict(inputs), base_model, t))
        reader = getattr(sources, "__self__", None)
        key = (
            spec.name,
            id(getattr(reader, "slice_out", None)),
            id(getattr(reader, "module", None)),
            t,
            base_model,
            signature(tensor_name),
            tuple((m, signature(n)) for m, n in inputs.items()),
        )
        if reader is None or key not in memo:
            res = original(
                spec,
                tensor_name=tensor_name,
                inputs=inputs,
                sources=sources,
                base_model=base_model,
                t=t,
            )
            if reader is None:
                return res
            memo[key] = res
        return memo[key]

    plan.resolve_parameters = resolve
    try:
        yield
    finally:
        plan.resolve_parameters = original


def plan_tensors(
    config: MergeConfiguration,
    options: MergeOptions,
    calls: list[ResolveCall] | None = None,
) -> list[tuple[WeightInfo, ExecuteMergeMethodTask]]:
    """(output weight, MergeKit task) for every tensor the recipe writes, in MergeKit's order.

    ``calls``, if given, receives each task's :class:`ResolveCall` (same order as the tasks).
    """
    import mergekit.merge as merge
    from mergekit.architecture import get_architecture_info
    from mergekit.io.tasks import LoaderCache
    from mergekit.plan import MergePlanner

    arch_info = get_architecture_info(config, options)
    LoaderCache().setup(options=options)
    out_config = merge._model_out_config(
        config, arch_info, trust_remote_code=options.trust_remote_code
    )
    planner = MergePlanner(config, arch_info, options=options, out_model_config=out_config)
    raw = config.model_dump(mode="json", exclude_none=True)
    with _shared_resolution(_filters(raw, set()), calls):
        planner._plan()  # what plan_to_disk / plan_in_memory run first
    tasks = list(planner._tensors)
    if calls is not None and len(calls) != len(tasks):
        raise RuntimeError(f"planner resolved {len(calls)} tensors but planned {len(tasks)}")
    return tasks


def recipe_filters(config: MergeConfiguration) -> list[str]:
    """Every ``filter:`` string of a recipe, sorted (the key of a tensor's parameters)."""
    return sorted(_filters(config.model_dump(mode="json", exclude_none=True), set()))


def resolve_like_planner(
    config: MergeConfiguration, calls: list[ResolveCall]
) -> list[tuple[dict[str, Any], dict[Any, dict[str, Any]]]]:
    """Each call's (shared, per-input) parameters for a ``models:`` recipe, without planning.

    The planner turns ``models:`` into one slice whose sources carry each model's
    ``parameters`` and no slice or module parameters of their own, so a model's settings are
    its ``parameters`` then the recipe's; ``resolve_parameters`` (MergeKit's resolver) does the
    rest.  Calls that agree on ``t`` and on which filters their tensor names contain share one
    resolution.  Callers check the result against a real plan once per recipe shape.
    """
    from mergekit import merge_methods
    from mergekit.parameter_resolver import resolve_parameters

    spec = merge_methods.get(config.merge_method).spec
    models = config.models or []
    filters = recipe_filters(config)

    def sources(model: Any = None) -> Iterator[Any]:
        if model is not None:
            for m in models:
                if m.model == model:
                    yield m.parameters
        yield config.parameters

    memo: dict[Any, Any] = {}
    out = []
    for call in calls:
        key = (
            call.t,
            call.base_model,
            _signature(filters, call.tensor_name),
            tuple((m, _signature(filters, n)) for m, n in call.inputs.items()),
        )
        res = memo.get(key)
        if res is None:
            res = memo[key] = resolve_parameters(
                spec,
                tensor_name=call.tensor_name,
                inputs=call.inputs,
                sources=sources,
                base_model=call.base_model,
                t=call.t,
            )
        out.append(res)
    return out
