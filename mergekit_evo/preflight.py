"""Preflight: every check a search config can fail before any weight loads or RUN_DIR is written.

A search runs for hours; a broken model folder or two models that cannot be merged must fail in
the first second with one line naming the field, the value and what is valid, not as 40 failed
trials.  Reads only small files: each model's ``config.json``, its tokenizer, and the JSON header
of each ``*.safetensors`` file (whose declared sizes catch a truncated download).

Sits above :mod:`mergekit_evo.config` and :mod:`mergekit_evo.space` (it builds the spaces to
check layer counts and method parameters), so ``config`` never imports ``space``.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from pathlib import Path
from typing import Any

from mergekit_evo.config import ConfigError, SearchConfig, load_search_config

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
#: config.json keys every merged model must agree on (tensor shapes, layer internals)
SHAPE_KEYS = (
    "model_type",
    "architectures",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
)


def load_checked_config(path: str | os.PathLike[str]) -> SearchConfig:
    """Read and validate a config file, then run :func:`preflight`; raises ConfigError."""
    cfg = load_search_config(path)
    preflight(cfg)
    return cfg


def preflight(cfg: SearchConfig, *, tokenizers: bool = True) -> None:
    """Every check that needs the model folders, task folders or MergeKit; no weights are read.

    Raises :class:`ConfigError` with every problem found, each naming its field.
    """
    folders = _folders(cfg)
    errors = _exist(cfg, folders)
    if errors:
        raise ConfigError(errors)
    configs: dict[str, dict[str, Any]] = {}
    for path, fields in folders.items():
        if not os.path.isdir(path):  # a hub id: nothing local to read
            continue
        hf, problems = check_model_folder(
            path, tokenizer=tokenizers, trust_remote_code=cfg.trust_remote_code
        )
        errors += [(fields[0], p) for p in problems]
        if hf is not None:
            configs[path] = hf
    if errors:
        raise ConfigError(errors)
    errors += _agreement(cfg, folders, configs)
    if errors:
        raise ConfigError(errors)
    errors += _space_checks(cfg)
    if errors:
        raise ConfigError(errors)


def check_device(device: str) -> list[tuple[str, str]]:
    """The accelerator ``device`` names is on this machine (asked without initialising CUDA).

    Not part of :func:`preflight` (a config written for a GPU host is checked anywhere); the
    search runs it before it starts, where the device must exist."""
    kind, _, index = device.partition(":")
    if kind == "cpu":
        return []
    import torch

    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    elif kind == "xpu":
        xpu = getattr(torch, "xpu", None)
        count = xpu.device_count() if xpu is not None and xpu.is_available() else 0
    else:  # mps: one device or none
        count = int(torch.backends.mps.is_available())
    if count == 0:
        return [("device", f"{device!r}, but torch sees no {kind} device here; e.g. cpu")]
    if index and int(index) >= count:
        return [("device", f"{device!r}, but torch sees {count} {kind} device(s) (0..{count - 1})")]
    return []


# -- which folders, and do they exist -------------------------------------------------------------


def _folders(cfg: SearchConfig) -> dict[str, list[str]]:
    """Model folder -> the config fields that name it (first: the one errors are reported on)."""
    out: dict[str, list[str]] = {}
    for name, path in cfg.models.items():
        out.setdefault(path, []).append(f"models.{name}")
    if cfg.base_model:
        out.setdefault(cfg.base_model, []).append("base_model")
    if cfg.mode == "dfs" and cfg.dfs.models:
        for i, m in enumerate(cfg.dfs.models):
            out.setdefault(cfg.model_path(m), []).append(f"dfs.models.{i}")
    return out


def _exist(cfg: SearchConfig, folders: dict[str, list[str]]) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    for path, fields in folders.items():
        if not os.path.isdir(path) and not _HUB_ID.match(path):
            what = "a file, not a model folder" if os.path.exists(path) else "no such model folder"
            errors.append((fields[0], f"{what} {path!r}; give a folder with config.json"))
    for key in ("fitness", "report"):
        fc = getattr(cfg, key)
        for i, p in enumerate(fc.include_path if fc is not None else []):
            if not os.path.isdir(p):
                errors.append((f"{key}.include_path.{i}", f"no such task folder {p!r}"))
    return errors


# -- one model folder -----------------------------------------------------------------------------


def check_model_folder(
    path: str, tokenizer: bool = True, trust_remote_code: bool = False
) -> tuple[dict[str, Any] | None, list[str]]:
    """(its config.json as a dict, or None; the problems found), reading no weights."""
    problems: list[str] = []
    hf = _read_config_json(Path(path), problems)
    problems += check_weights(Path(path))
    if tokenizer and not problems:
        problems += _check_tokenizer(path, trust_remote_code)
    return hf, problems


def _read_config_json(folder: Path, problems: list[str]) -> dict[str, Any] | None:
    f = folder / "config.json"
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{str(folder)!r} has no config.json; is it a Hugging Face model folder?")
        return None
    except json.JSONDecodeError as e:
        problems.append(
            f"{f} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
            "re-save or re-download the model"
        )
        return None
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"cannot read {f}: {e}")
        return None
    if not isinstance(data, dict):
        problems.append(f"{f} holds a {type(data).__name__}, not a JSON object (model config)")
        return None
    data = data.get("text_config", data) if isinstance(data.get("text_config"), dict) else data
    layers = data.get("num_hidden_layers")
    if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1:
        problems.append(f"{f}: num_hidden_layers is {layers!r}; need a positive integer")
    for key in ("hidden_size", "vocab_size", "num_attention_heads"):
        v = data.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            problems.append(f"{f}: {key} is {v!r}; need a positive integer")
    return data


def check_weights(folder: Path) -> list[str]:
    """Problems with the weight files: none present, a sharded index naming a missing file, or
    a safetensors file whose header is unreadable or declares more bytes than the file has."""
    st = sorted(folder.glob("*.safetensors"))
    other = [p for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth")]
    if not st and not other:
        return [f"no weight files in {str(folder)!r} (model.safetensors or pytorch_model.bin)"]
    problems: list[str] = []
    for index in folder.glob("*.safetensors.index.json"):
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            missing = sorted({f for f in weight_map.values() if not (folder / f).is_file()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            problems.append(f"{index} is not a safetensors index ({type(e).__name__}: {e})")
            continue
        if missing:
            problems.append(f"{index.name} names missing weight file(s) {missing[:3]}")
    for f in st:
        why = safetensors_problem(f)
        if why:
            problems.append(f"{f}: {why}")
    return problems


def safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file cannot load (header only, so cheap at any size), or None."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{size} bytes, too short for a safetensors header (truncated?)"
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, _MAX_HEADER):
                return f"header length {n} exceeds the file ({size} bytes): truncated?"
            header = json.loads(fh.read(n).decode("utf-8"))
    except OSError as e:
        return f"cannot read ({e.strerror or e})"
    except (UnicodeDecodeError, ValueError) as e:
        return f"unreadable safetensors header ({type(e).__name__}); truncated or corrupt"
    if not isinstance(header, dict):
        return "safetensors header is not a JSON object"
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = (int(x) for x in info["data_offsets"])
            shape = [int(d) for d in info["shape"]]
            width = _DTYPE_BYTES.get(info["dtype"])
        except (KeyError, TypeError, ValueError):
            return f"tensor {name!r} has a malformed header entry"
        if width is not None and stop - begin != width * math.prod(shape):
            dtype = info["dtype"]
            return f"tensor {name!r}: {stop - begin} bytes declared for {dtype} {shape}"
        end = max(end, stop)
    need = 8 + n + end
    if need > size:
        return (
            f"truncated: the header declares {need} bytes, the file has {size}; "
            "re-download or re-save the model"
        )
    return None


def _check_tokenizer(path: str, trust_remote_code: bool = False) -> list[str]:
    try:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as e:  # any failure is the user's folder, reported in one line
        msg = " ".join(str(e).split())[:200]
        return [f"tokenizer does not load from {path!r} ({type(e).__name__}: {msg})"]
    return []


# -- models against each other --------------------------------------------------------------------


def _agreement(
    cfg: SearchConfig, folders: dict[str, list[str]], configs: dict[str, dict[str, Any]]
) -> list[tuple[str, str]]:
    """Source models that must merge tensor by tensor (PS) or stack layers (DFS) must agree."""
    label = {p: f[0].removeprefix("models.") for p, f in folders.items()}
    errors: list[tuple[str, str]] = []
    if cfg.mode in ("ps", "ps_dfs"):
        paths = [p for p in folders if not any(f.startswith("dfs.") for f in folders[p])]
        why = "PS merges tensors element by element, so every model and base_model must match"
        # a recipe with slices: (a --from-recipe template) picks its layer ranges itself
        sliced = isinstance(cfg.ps.recipe, dict) and "slices" in cfg.ps.recipe
        keys = SHAPE_KEYS if sliced else (*SHAPE_KEYS, "num_hidden_layers")
        errors += _differ(paths, configs, label, keys, why)
    if cfg.mode in ("dfs", "ps_dfs"):
        if cfg.mode == "dfs":
            names = cfg.dfs.models or list(cfg.models)
            paths = list(dict.fromkeys(cfg.model_path(m) for m in names))
        else:
            paths = [cfg.base_model or next(iter(cfg.models.values()))]
            paths.append(cfg.model_path(cfg.ps_dfs.partner or list(cfg.models)[-1]))
        if cfg.mode == "dfs":
            why = "DFS stacks layers of these models into one path, so their layers must match"
            errors += _differ(paths, configs, label, SHAPE_KEYS, why)
        errors += _folding(paths, configs, label)
    return errors


def _differ(
    paths: list[str],
    configs: dict[str, dict[str, Any]],
    label: dict[str, str],
    keys: tuple[str, ...],
    why: str,
) -> list[tuple[str, str]]:
    known = [p for p in dict.fromkeys(paths) if p in configs]
    errors: list[tuple[str, str]] = []
    for key in keys:
        if not all(key in configs[p] for p in known):
            continue  # a default left out of some config.json: nothing to compare
        values = {label[p]: configs[p][key] for p in known}
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            shown = ", ".join(f"{n}={v}" for n, v in values.items())
            errors.append(("models", f"{key} differs: {shown} ({why})"))
    return errors


def _folding(
    paths: list[str], configs: dict[str, dict[str, Any]], label: dict[str, str]
) -> list[tuple[str, str]]:
    """DFS folds its scales into weights by a per-architecture rule; others are refused here."""
    from mergekit_evo.methods.folding import FOLDING_RULES

    unsupported: dict[str, list[str]] = {}
    for p in dict.fromkeys(paths):
        mt = configs.get(p, {}).get("model_type")
        if mt is not None and mt not in FOLDING_RULES:
            unsupported.setdefault(str(mt), []).append(label[p])
    return [
        (
            "models" if len(names) > 1 else _field(names[0]),
            f"model_type {mt!r} ({', '.join(names)}) is not supported by DFS (its scales fold "
            f"into weights only for {sorted(FOLDING_RULES)}); use mode: ps for these models",
        )
        for mt, names in unsupported.items()
    ]


def _field(label: str) -> str:
    return label if label == "base_model" or label.startswith("dfs.") else f"models.{label}"


# -- the search spaces (layer counts, method parameters, windows) ---------------------------------


def _space_checks(cfg: SearchConfig) -> list[tuple[str, str]]:
    """What the PS / DFS genomes check: method parameter names, windows against T, ..."""
    errors: list[tuple[str, str]] = []
    if cfg.mode in ("ps", "ps_dfs"):
        from mergekit_evo.space.ps import PSSpace

        for method in cfg.ps.methods:
            try:
                PSSpace.from_config(cfg.for_method(method))
            except ConfigError as e:
                errors.extend(e.errors)
    if cfg.mode == "dfs":
        from mergekit_evo.space.dfs import DFSSpace

        try:
            DFSSpace.from_config(cfg)
        except ConfigError as e:
            errors.extend(e.errors)
    if cfg.mode == "ps_dfs" and not errors:
        from mergekit_evo.space.dfs import DFSSpace

        ref = cfg.base_model or next(iter(cfg.models.values()))
        k = cfg.ps_dfs.ps_candidates_multiplier
        paths = [ref] * (k or 1)
        if not k:
            paths.append(cfg.model_path(cfg.ps_dfs.partner or list(cfg.models)[-1]))
        if all(os.path.isdir(p) for p in paths):
            try:
                DFSSpace.from_config(cfg, model_paths=paths, labels=cfg.dfs_labels())
            except ConfigError as e:
                errors.extend(e.errors)
    return errors
