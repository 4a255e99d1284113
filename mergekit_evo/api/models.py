"""The API's models -> the model folders a search config names (every merge is a MergeKit recipe).

A model is a folder, a hub name already in the local Hugging Face cache, or a
``transformers.PreTrainedModel`` in memory. A recipe names folders, so a model in memory is
saved once into the run folder (``RUN_DIR/sources/<name>``); the resident candidate builder
then takes the object itself as that folder's source (:meth:`ResidentCandidateBuilder.adopt`)
instead of loading it again.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mergekit_evo.api.errors import APIConfigError
from mergekit_evo.recipe_import import model_name

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class Sources:
    """Resolved models: name -> folder, and the objects behind the folders saved from memory."""

    folders: dict[str, str] = field(default_factory=dict)
    in_memory: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # folder -> (model, tok)

    def save(self) -> None:
        """Write the models given in memory to their folders (after the config checked out).

        A rerun into the same run folder keeps a saved copy of the same weights, and refuses
        other weights once a search began on it (its trials were scored on those)."""
        for folder, (model, tokenizer) in self.in_memory.items():
            target = Path(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            _save(model, tokenizer, target, (target.parent.parent / "run.json").exists())

    def dtype(self) -> str | None:
        """The dtype of the models given in memory (a search builds candidates in it)."""
        for model, _ in self.in_memory.values():
            name = str(getattr(model, "dtype", "")).removeprefix("torch.")
            if name in ("float32", "float16", "bfloat16"):
                return name
        return None


def _is_model(obj: Any) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(obj, PreTrainedModel)


def hub_folder(name: str, what: str) -> str:
    """The local snapshot folder of a hub name (no download: only what the cache holds)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE

    try:
        return str(snapshot_download(name, local_files_only=True))
    except Exception as e:  # LocalEntryNotFoundError, a bad name, a broken cache
        raise APIConfigError(
            f"{what}: {name!r} is neither a model folder nor a model in the local Hugging Face "
            f"cache ({HF_HUB_CACHE}); download it first (hf download {name}) or give its folder "
            f"({type(e).__name__})"
        ) from None


def _save(model: Any, tokenizer: Any, folder: Path, started: bool) -> None:
    """``save_pretrained`` into ``folder``, unless it already holds these very files."""
    tmp = folder.with_name(f".{folder.name}.new")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if folder.exists():
        if _same_files(folder, tmp):
            shutil.rmtree(tmp)
            return
        if started:
            shutil.rmtree(tmp)
            raise APIConfigError(
                f"models: the run folder's {folder} holds other weights for this model, and its "
                "search was scored on those; use a new out= (or the same models)"
            )
        shutil.rmtree(folder)
    tmp.rename(folder)


def _same_files(a: Path, b: Path) -> bool:
    """The same weights and config, byte for byte (a sampled fingerprint could miss an edited
    tensor). Tokenizer files may differ: a tokenizer in use keeps its padding state."""
    import filecmp

    def scored(folder: Path) -> list[str]:
        return sorted(
            p.name
            for p in folder.iterdir()
            if p.is_file() and (p.suffix in (".safetensors", ".bin") or p.name == "config.json")
        )

    names = scored(a)
    return names == scored(b) and all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def resolve_models(
    models: list[Any],
    *,
    tokenizer: Any,
    run_dir: Path,
    what: str = "models",
    taken: set[str] | None = None,
) -> Sources:
    """Folders for ``models``, in their order; those in memory get ``run_dir/sources/<name>``,
    written by :meth:`Sources.save` (nothing is written here)."""
    if isinstance(models, (str, os.PathLike)) or _is_model(models):
        raise APIConfigError(f"{what}: give a list of models, not one ({type(models).__name__})")
    names = taken if taken is not None else set()
    plan: list[tuple[str, str | None, Any]] = []  # (name, folder or None: save it, object)
    for i, m in enumerate(models):
        if _is_model(m):
            label = Path(str(getattr(m, "name_or_path", "") or "")).name or f"model_{i}"
            plan.append((model_name(label, names), None, m))
        elif isinstance(m, (str, os.PathLike)):
            path = os.fspath(m)
            if os.path.isdir(path):
                folder = str(Path(path).resolve())
            elif _HUB_ID.match(path) and not os.path.exists(path):
                folder = hub_folder(path, f"{what}[{i}]")
            else:
                kind = "a file, not a model folder" if os.path.exists(path) else "no such folder"
                raise APIConfigError(
                    f"{what}[{i}]: {path!r} is {kind}; give a model folder, a hub name in the "
                    "local cache, or a transformers PreTrainedModel"
                )
            plan.append((model_name(path, names), folder, None))
        else:
            raise APIConfigError(
                f"{what}[{i}]: a {type(m).__name__} is not a model; give a model folder, a hub "
                "name in the local cache, or a transformers PreTrainedModel"
            )
    tokenizers = {
        name: tokenizer or _own_tokenizer(obj, what) for name, f, obj in plan if f is None
    }
    out = Sources()
    for name, folder, obj in plan:
        if folder is None:
            folder = str((run_dir / "sources" / name).absolute())
            out.in_memory[folder] = (obj, tokenizers[name])
        out.folders[name] = folder
    return out


def _own_tokenizer(model: Any, what: str) -> Any:
    """No ``tokenizer=``: the one in the folder the model was loaded from, if it has one."""
    source = str(getattr(model, "name_or_path", "") or "")
    if source and os.path.isdir(source):
        import transformers

        try:
            return transformers.AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError):
            pass
    raise APIConfigError(
        f"tokenizer: {what} has a model in memory whose folder ({source or 'none'}) holds no "
        "tokenizer; a model is saved with one for the search to score it: pass tokenizer="
    )
