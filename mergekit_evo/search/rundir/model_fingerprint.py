"""Which weights a run directory's study was scored on.

A resumed study ranks its old trials' scores with the new ones, so resuming over model folders
whose weights changed since the first run (a zoo rebuilt in place, a checkpoint overwritten)
would silently compare candidates of different models; it happened while measuring issue 13.
The fingerprint is cheap enough for 7B checkpoints: every weight file's name and size and three
64 KiB samples of it (start, middle, end), plus ``config.json``. A rebuilt model of the same
shape has the same headers and sizes but different bytes everywhere; copying or moving a folder
keeps it (modification times are not used).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mergekit_evo.config import ConfigError, SearchConfig

SAMPLE = 1 << 16
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def folder_fingerprint(folder: str | os.PathLike[str]) -> str:
    """A short digest of a model folder's weight files and config."""
    h = hashlib.sha256()
    for p in sorted(Path(folder).iterdir()):
        if not p.is_file() or not (p.suffix in WEIGHT_SUFFIXES or p.name == "config.json"):
            continue
        size = p.stat().st_size
        h.update(f"{p.name}\0{size}\0".encode())
        with open(p, "rb") as f:
            for offset in sorted({0, max(0, size // 2 - SAMPLE // 2), max(0, size - SAMPLE)}):
                f.seek(offset)
                h.update(f.read(SAMPLE))
    return h.hexdigest()[:16]


def model_folders(cfg: SearchConfig) -> dict[str, str]:
    """Config field -> local model folder, for every model the search reads."""
    out = {f"models.{name}": path for name, path in cfg.models.items()}
    if cfg.base_model:
        out["base_model"] = cfg.base_model
    for i, m in enumerate(cfg.dfs.models or []):
        if m not in cfg.models:
            out[f"dfs.models.{i}"] = m
    return {k: v for k, v in out.items() if os.path.isdir(v)}


def model_fingerprints(cfg: SearchConfig) -> dict[str, str]:
    """Folder -> fingerprint (what ``run.json`` records at the first start)."""
    return {path: folder_fingerprint(path) for path in set(model_folders(cfg).values())}


def check_same_models(recorded: dict[str, str] | None, cfg: SearchConfig) -> None:
    """Refuse to resume when a model folder's weights differ from those the study was scored on
    (run directories from before this check record none and are not checked)."""
    if not recorded:
        return
    errors = []
    for field, path in sorted(model_folders(cfg).items()):
        if path in recorded and folder_fingerprint(path) != recorded[path]:
            errors.append(
                (
                    field,
                    f"the weights in {path} changed since this search started (run.json); "
                    "its trials were scored on the old ones: use a new --out",
                )
            )
    if errors:
        raise ConfigError(errors)
