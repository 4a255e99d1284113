"""Running recipes: the ``run_merge`` wrapper for ``dfs`` / ``ps_dfs`` and ``merge_recipe``.

Every recipe is validated (shapes, paths, scales, architecture) before any weights load, and
written into a staging folder beside ``out_path`` that only replaces it on success: a failed
or invalid merge leaves nothing half-written behind.
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

import yaml

from mergekit_evo.methods.errors import RecipeError
from mergekit_evo.methods.install import WHOLE_MODEL_METHODS, ensure_installed

if TYPE_CHECKING:
    from mergekit.config import MergeConfiguration
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


def load_recipe(recipe: MergeConfiguration | dict | str | os.PathLike) -> MergeConfiguration:
    """A ``MergeConfiguration`` from an object, a dict, or a YAML file path."""
    ensure_installed()
    from mergekit.config import MergeConfiguration
    from pydantic import ValidationError

    if isinstance(recipe, MergeConfiguration):
        return recipe
    data = recipe
    if isinstance(recipe, (str, os.PathLike)):
        path = Path(recipe)
        if not path.is_file():
            raise RecipeError("recipe", str(recipe), "a path to a MergeKit YAML file")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise RecipeError("recipe", type(data).__name__, "a YAML mapping (MergeKit config)")
    try:
        return MergeConfiguration.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise RecipeError(loc or "recipe", err.get("input"), err["msg"]) from None


def merge_recipe(
    recipe: MergeConfiguration | dict | str | os.PathLike,
    out_path: str | os.PathLike,
    options: MergeOptions | None = None,
) -> Path:
    """Run any MergeKit recipe, ``dfs`` and ``ps_dfs`` included, through MergeKit."""
    config = load_recipe(recipe)
    import mergekit.merge
    from mergekit.options import MergeOptions

    options = options or MergeOptions(quiet=True)
    source = None
    if isinstance(recipe, (str, os.PathLike)):
        source = Path(recipe).read_text(encoding="utf-8")
    if config.merge_method in WHOLE_MODEL_METHODS:
        mergekit.merge.run_merge(config, str(out_path), options=options, config_source=source)
    else:
        with staged_output(out_path) as stage:
            mergekit.merge.run_merge(config, str(stage), options=options, config_source=source)
    return Path(out_path)
