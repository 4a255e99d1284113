"""``build_zoo``: tokenizer, base, MATH and LANG fine-tunes, splits, lm-eval tasks, ``zoo.json``.

Why one deterministic pipeline: tests, the search and the proof tables must all see the same zoo
for a seed. Every random stream is ``random.Random(f"{seed}:{purpose}")`` or a torch generator
seeded from the seed, so streams do not shift when another one changes.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import random
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mergekit_evo.zoo import corpus, tasks
from mergekit_evo.zoo.designs import DEFAULT_DESIGN, DESIGNS, ZooDesign
from mergekit_evo.zoo.sizes import SIZES, ZooSize
from mergekit_evo.zoo.tokenizer import make_tokenizer, vocabulary
from mergekit_evo.zoo.train import encode_pairs, finetune, make_model, pretrain

MANIFEST_VERSION = 1
REAL_DESIGN = "real-base"  # mergekit_evo.zoo.real (imported lazily: transformers)


def _rng(seed: int, purpose: str) -> random.Random:
    return random.Random(f"{seed}:{purpose}")


def _make_splits(
    seed: int, size: ZooSize, design: ZooDesign
) -> tuple[dict[str, tuple[list[str], list]], set[str]]:
    """Evaluation splits (questions rendered, problems) and the keys no training data may use."""
    rng = _rng(seed, "splits")
    make_target = design.splits["target_search"].make  # search and held-out: one draw, cut
    target = corpus.sample_problems(rng, make_target, size.search_n + size.heldout_n, unique=True)
    banned = {p.key for p in target}
    drawn = {"target_search": target[: size.search_n], "target_heldout": target[size.search_n :]}
    skill_keys: set[str] = set()
    for name, split in design.splits.items():
        if name not in drawn:
            n = getattr(size, split.size_field)
            drawn[name] = corpus.sample_problems(rng, split.make, n, banned, unique=True)
            skill_keys |= {p.key for p in drawn[name]}
    banned |= skill_keys
    rendered = {
        name: ([corpus.render(p, design.splits[name].lang) for p in problems], problems)
        for name, problems in drawn.items()
    }
    return rendered, banned


def _base_stream(
    seed: int, size: ZooSize, vocab: dict[str, int], banned: set[str], design: ZooDesign
) -> torch.Tensor:
    """``size.base_tokens`` tokens of base-mixture documents, each followed by ``</s>``."""
    rng = _rng(seed, "base-data")
    eos = vocab["</s>"]
    ids: list[int] = []
    while len(ids) < size.base_tokens:
        doc = corpus.base_document(
            rng, banned, _mixture(design, size), size.problem_switch_rate,
            design.text_style, design.problem_style,
        )  # fmt: skip
        ids.extend(vocab[w] for w in doc.split())
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def _mixture(design: ZooDesign, size: ZooSize) -> dict[str, float]:
    if design.name == "lang":  # the size's code-switched problem weight (0 in every preset)
        return design.base_mixture | {"onestep_mix": size.problem_mix}
    return dict(design.base_mixture)


def _save(model: torch.nn.Module, tokenizer, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def build_zoo(
    out_dir: str | Path,
    seed: int = 0,
    size: str = "cpu",
    device: str = "cpu",
    command: str | None = None,
    log: Callable[[str], None] = print,
    overrides: dict | None = None,
    threads: int | None = None,
    design: str = DEFAULT_DESIGN,
    gguf: str | Path | None = None,
    base_from: str | Path | None = None,
) -> dict:
    """Build a complete zoo in ``out_dir``; return its manifest (also written as ``zoo.json``).

    ``threads`` sets torch's intra-op threads for the build: 1 is ~3x faster than 2 on a CPU that
    other jobs oversubscribe, and gave the same bytes as 2 in our checks. ``gguf`` and
    ``base_from`` choose design ``real-base``'s base (:mod:`mergekit_evo.zoo.real`).
    """
    if design not in (*DESIGNS, REAL_DESIGN):
        raise ValueError(f"--design: {design!r}; valid: {[*DESIGNS, REAL_DESIGN]}")
    if design != REAL_DESIGN and (gguf or base_from):
        raise ValueError(f"--gguf/--base-from: only for --design {REAL_DESIGN}, not {design}")
    prev = torch.are_deterministic_algorithms_enabled()
    prev_threads = torch.get_num_threads()
    if device == "cpu":  # restored afterwards: callers (e.g. a pytest session) keep their setting
        torch.use_deterministic_algorithms(True)
    if threads:
        torch.set_num_threads(threads)
    try:
        if design == REAL_DESIGN:  # its search split is already 1,000 questions
            from mergekit_evo.zoo.real import build_real_zoo

            return build_real_zoo(
                out_dir, seed, size, device, command, log, overrides, gguf, base_from
            )
        manifest = _build(out_dir, seed, size, device, command, log, overrides, DESIGNS[design])
    finally:
        torch.use_deterministic_algorithms(prev)
        torch.set_num_threads(prev_threads)
    total = manifest["size_config"].get("search_total", 0)
    if total > manifest["splits"]["target_search"]["n"]:
        from mergekit_evo.zoo.extend import extend_search_split

        extend_search_split(out_dir, total)
        manifest = json.loads((Path(out_dir) / "zoo.json").read_text(encoding="utf-8"))
    return manifest


def _build(
    out_dir: str | Path,
    seed: int,
    size: str,
    device: str,
    command: str | None,
    log: Callable[[str], None],
    overrides: dict | None,
    design: ZooDesign,
) -> dict:
    """The pipeline behind :func:`build_zoo`."""
    t_start = time.time()
    preset = dataclasses.replace(SIZES[size], **(overrides or {}))  # overrides: design studies
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = make_tokenizer(out / "tokenizer")
    vocab = {w: i for i, w in enumerate(vocabulary())}
    special = {"pad": vocab["<pad>"], "bos": vocab["<s>"], "eos": vocab["</s>"]}

    def encode(text: str) -> list[int]:
        return [vocab[w] for w in text.split()]

    # evaluation splits first, so that no training example repeats one of them
    splits, banned = _make_splits(seed, preset, design)
    (out / tasks.DATA_DIR).mkdir(exist_ok=True)
    split_info: dict[str, dict] = {}
    for name, (questions, problems) in splits.items():
        data_file = f"{name}.jsonl"
        n = tasks.write_jsonl(out / tasks.DATA_DIR / data_file, questions, problems)
        task, desc = design.splits[name].task, design.splits[name].description
        yaml_path = tasks.write_task(out, task, data_file, desc)
        split_info[name] = {
            "task": task,
            "yaml": str(yaml_path.relative_to(out)),
            "data": f"{tasks.DATA_DIR}/{data_file}",
            "n": n,
            "description": desc,
        }

    timings: dict[str, float] = {}
    t = time.time()
    stream = _base_stream(seed, preset, vocab, banned, design)
    log(f"[data] {stream.numel()} base tokens ({time.time() - t:.0f}s)")
    base = make_model(preset, len(vocab), seed, special)
    n_params = sum(p.numel() for p in base.parameters())
    log(f"[base] {n_params} parameters, {preset.layers} layers")
    base_losses = pretrain(base, stream, preset, seed, device, log)
    _save(base, tokenizer, out / "base")
    timings["base"] = time.time() - t

    ft_losses: dict[str, float] = {}
    for i, (name, source) in enumerate(design.sources.items()):
        t = time.time()
        pairs = source.make(_rng(seed, f"{name}-data"), preset.ft_examples, banned)
        model = make_model(preset, len(vocab), seed, special)
        model.load_state_dict(base.state_dict())
        losses = finetune(
            model, encode_pairs(pairs, encode, special["eos"]), preset, seed + 1 + i,
            special["pad"], device, log, name, source.body_lr_scale, source.frozen,
        )  # fmt: skip
        ft_losses[name] = losses[-1]
        _save(model, tokenizer, out / name)
        timings[name] = time.time() - t

    manifest = {
        "format": MANIFEST_VERSION,
        "seed": seed,
        "design": design.name,
        "size": size,
        "size_config": preset.to_dict(),
        "overrides": overrides or {},
        "command": command
        or f"mergekit-evo zoo build {shlex.quote(str(out_dir))} "
        f"--design {design.name} --size {size} --seed {seed} --device {device}",
        "tokenizer": "tokenizer",
        "vocab_size": len(vocab),
        "architecture": "LlamaForCausalLM",
        "params_per_model": n_params,
        "models": {
            "base": {
                "path": "base",
                "role": "base",
                "trained_on": "mixture " + json.dumps(_mixture(design, preset)),
                "final_loss": round(base_losses[-1], 4),
            },
            **{
                name: {
                    "path": name,
                    "role": "source",
                    "finetuned_from": "base",
                    "trained_on": source.description,
                    "final_loss": round(ft_losses[name], 4),
                }
                for name, source in design.sources.items()
            },
        },
        "target": design.target,
        "splits": split_info,
        "tasks_dir": tasks.TASKS_DIR,
        "device": device,
        "build_seconds": {k: round(v, 1) for k, v in timings.items()}
        | {"total": round(time.time() - t_start, 1)},
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
        },
        "argv": sys.argv,
    }
    (out / "zoo.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
