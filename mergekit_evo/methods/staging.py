"""Writing merges atomically (stage beside the target, rename on success) and MergeKit's
process-wide state around a DFS write (cached loaders, per-layer config fields).

Separate from :mod:`~mergekit_evo.methods.run` so ``ps_dfs`` and the ``run_merge`` lowering can
use it without importing each other.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mergekit.options import MergeOptions

    from mergekit_evo.methods.dfs import CompiledDFS


@contextlib.contextmanager
def staged_output(out_path: str | os.PathLike) -> Iterator[Path]:
    """A fresh folder beside ``out_path``; moved into place on success, removed on failure."""
    out = Path(out_path).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if out.is_dir() and any(out.iterdir()):
        for item in stage.iterdir():  # same semantics as MergeKit writing into an existing dir
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
        stage.rmdir()
    else:
        if out.exists():
            out.rmdir()
        os.replace(stage, out)


def evict_cached_loaders(under: str | os.PathLike) -> int:
    """Drop MergeKit's cached tensor loaders for models stored under ``under``.

    ``LoaderCache.loaders`` is process-wide and never emptied: a loader for a scratch model (a
    ps_dfs stage output) keeps the deleted file open, and a later merge reading a model at the
    same path would get the stale tensors.  Returns how many loaders were dropped.
    """
    from mergekit.io.tasks import LoaderCache

    root = os.path.join(os.path.abspath(under), "")
    cache = LoaderCache()
    stale = [ref for ref in list(cache.loaders) if os.path.abspath(ref.model.path).startswith(root)]
    for ref in stale:
        cache.loaders.pop(ref).flush()
    return len(stale)


# Per-layer config fields (e.g. Qwen2's ``layer_types``) of the merge in progress: MergeKit
# only updates ``num_hidden_layers``, and transformers 5 refuses to save a config whose
# per-layer lists disagree with it.
_PER_LAYER_CONFIG: ContextVar[dict[str, list[Any]] | None] = ContextVar(
    "mergekit_evo_per_layer_config", default=None
)


def wrap_model_out_config(original: Callable[..., Any]) -> Callable[..., Any]:
    """MergeKit's ``_model_out_config`` plus the per-layer fields of the DFS path."""

    @functools.wraps(original)
    def _model_out_config(*args: Any, **kwargs: Any) -> Any:
        cfg = original(*args, **kwargs)
        for key, value in (_PER_LAYER_CONFIG.get() or {}).items():
            setattr(cfg, key, list(value))
        return cfg

    return _model_out_config


def run_passthrough(
    compiled: CompiledDFS,
    out_path: str | os.PathLike,
    options: MergeOptions,
    config_source: str,
    run_merge: Callable[..., Any],
) -> None:
    """Write a compiled DFS recipe through MergeKit's passthrough, atomically."""
    token = _PER_LAYER_CONFIG.set(compiled.per_layer_config)
    try:
        with staged_output(out_path) as stage:
            run_merge(
                compiled.passthrough, str(stage), options=options, config_source=config_source
            )
    finally:
        _PER_LAYER_CONFIG.reset(token)
