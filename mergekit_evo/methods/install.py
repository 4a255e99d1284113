"""Plugging ``dfs`` and ``ps_dfs`` into an unmodified MergeKit.

MergeKit has no plugin discovery, so three small, idempotent extensions are applied the moment
the corresponding MergeKit module finishes importing (see :mod:`mergekit_evo._hook`):

- ``mergekit.config``: the top-level ``parameters`` also accept a matrix (``scales: [[...]]``),
  which MergeKit's ``ParameterSetting`` union lacks;
- ``mergekit.merge_methods.registry``: ``dfs`` and ``ps_dfs`` are registered by name, so
  ``merge_methods.get`` and method listings know them;
- ``mergekit.merge``: ``run_merge`` lowers ``dfs`` / ``ps_dfs`` recipes to MergeKit's own
  methods (see :mod:`mergekit_evo.methods.run`) and hands everything else through unchanged;
  the output config gets per-layer fields (e.g. ``layer_types``) that follow the new path.

The per-tensor planner cannot express a change of depth, so the registered methods refuse to
run per tensor with an error that says how to run them.
"""

from __future__ import annotations

import sys
from typing import Any

from mergekit_evo.methods.names import WHOLE_MODEL_METHODS

_PRETTY = {"dfs": "Data Flow Space (layer path + scaling)", "ps_dfs": "PS + DFS"}
_REFERENCE = "https://arxiv.org/abs/2403.13187"


def _widen_parameter_setting() -> None:
    from mergekit.config import MergeConfiguration, ParameterSetting

    widened = dict[str, ParameterSetting | list[list[float]]] | None
    field = MergeConfiguration.__pydantic_fields__["parameters"]
    if field.annotation == widened:
        return
    field.annotation = widened
    MergeConfiguration.model_rebuild(force=True)


def _make_whole_model_method(name: str) -> Any:
    from mergekit.merge_methods.base import GroupMergeMethod, MergeMethodSpec

    message = (
        f"merge method {name!r} changes the model's depth and is planned as a whole model: "
        "run it with `mergekit-yaml`, `mergekit.merge.run_merge` or `mergekit-evo merge` "
        "(mergekit-evo lowers it to passthrough slices), not through MergePlanner directly"
    )

    class WholeModelMethod(GroupMergeMethod):
        def validate_inputs(self, input_ids, base_id=None, *, group_name=None) -> None:
            raise RuntimeError(message)

        def merge_group(self, group, /, **parameters):
            raise RuntimeError(message)

    method = WholeModelMethod()
    method.spec = MergeMethodSpec(
        name=name, pretty_name=_PRETTY[name], reference_url=_REFERENCE, uses_accelerator=False
    )
    return method


def _register_methods() -> None:
    from mergekit.merge_methods import registry

    for name in WHOLE_MODEL_METHODS:
        if name not in registry._METHODS:
            registry.register(_make_whole_model_method(name))


def _wrap_run_merge() -> None:
    # the parent package gets its ``merge`` attribute only after the import hook returns
    merge_module = sys.modules["mergekit.merge"]
    if getattr(merge_module.run_merge, "_mergekit_evo", False):
        return
    from mergekit_evo.methods.lowering import wrap_run_merge
    from mergekit_evo.methods.staging import wrap_model_out_config

    merge_module.run_merge = wrap_run_merge(merge_module.run_merge)
    merge_module._model_out_config = wrap_model_out_config(merge_module._model_out_config)


_ACTIONS = {
    "mergekit.config": _widen_parameter_setting,
    "mergekit.merge_methods.registry": _register_methods,
    "mergekit.merge": _wrap_run_merge,
}


def on_mergekit_import(module_name: str) -> None:
    """Called by the import hook right after ``module_name`` executed."""
    action = _ACTIONS.get(module_name)
    if action is not None:
        action()


def ensure_installed() -> None:
    """Import MergeKit and apply every extension (for callers that bypass the .pth hook)."""
    import mergekit.merge  # noqa: F401 - importing runs the hook when the .pth is active

    for module_name, action in _ACTIONS.items():
        if module_name in sys.modules:
            action()
