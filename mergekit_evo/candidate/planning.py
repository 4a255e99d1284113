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


@contextlib.contextmanager
def _shared_resolution(filters: set[str]) -> Iterator[None]:
    import mergekit.plan as plan

    original = plan.resolve_parameters
    memo: dict[Any, Any] = {}
    ordered = sorted(filters)

    def signature(name: str | None) -> tuple[bool, ...]:
        return tuple(bool(name) and f in name for f in ordered)

    def resolve(spec, *, tensor_name, inputs, sources, base_model=None, t=0):
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
    config: MergeConfiguration, options: MergeOptions
) -> list[tuple[WeightInfo, ExecuteMergeMethodTask]]:
    """(output weight, MergeKit task) for every tensor the recipe writes, in MergeKit's order."""
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
    with _shared_resolution(_filters(raw, set())):
        planner._plan()  # what plan_to_disk / plan_in_memory run first
    return list(planner._tensors)
