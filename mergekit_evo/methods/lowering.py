"""The ``run_merge`` wrapper the import hook installs: ``dfs`` / ``ps_dfs`` are lowered to
MergeKit's passthrough; every other method goes straight to MergeKit's own ``run_merge``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mergekit_evo.methods.names import WHOLE_MODEL_METHODS
from mergekit_evo.methods.staging import run_passthrough

if TYPE_CHECKING:
    from mergekit.config import MergeConfiguration
    from mergekit.options import MergeOptions


def wrap_run_merge(original: Callable[..., Any]) -> Callable[..., Any]:
    """``run_merge`` that understands ``dfs`` and ``ps_dfs``; other methods pass straight on."""

    @functools.wraps(original)
    def run_merge(
        merge_config: MergeConfiguration,
        out_path: str,
        options: MergeOptions,
        config_source: str | None = None,
    ) -> None:
        if merge_config.merge_method not in WHOLE_MODEL_METHODS:
            return original(merge_config, out_path, options=options, config_source=config_source)
        source = config_source or merge_config.to_yaml()
        if merge_config.merge_method == "dfs":
            from mergekit_evo.methods.dfs import compile_dfs

            compiled = compile_dfs(merge_config, trust_remote_code=options.trust_remote_code)
            run_passthrough(compiled, out_path, options, source, original)
        else:
            from mergekit_evo.methods.ps_dfs import run_ps_dfs

            run_ps_dfs(merge_config, out_path, options, source, original)
        return None

    run_merge._mergekit_evo = True  # type: ignore[attr-defined]
    return run_merge
