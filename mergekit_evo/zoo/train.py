"""Pretraining (packed documents, loss everywhere) and fine-tuning (loss on answers only).

Why a hand-written loop instead of ``transformers.Trainer``: determinism and speed at this scale.
Batches come from a ``torch.Generator`` seeded by the build seed, the model from
``torch.manual_seed``, and CPU kernels run under ``torch.use_deterministic_algorithms``, so a
fixed seed on one machine gives byte-identical weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from mergekit_evo.zoo.sizes import ZooSize

Log = Callable[[str], None]


class FineTuneSchedule(Protocol):
    """What :func:`finetune` reads from a preset (a :class:`ZooSize` or a real-base preset)."""

    ft_steps: int
    ft_batch: int
    ft_lr: float
    warmup_frac: float


#: Parts of a Llama causal LM a fine-tune can keep frozen (``Source.frozen``); ``layers:A-B``
#: (inclusive) freezes transformer layers A..B as well.
FREEZABLE = ("embeddings", "head")


def frozen_parameters(model: torch.nn.Module, parts: Sequence[str]) -> list[torch.nn.Parameter]:
    """The parameters of ``parts``: input embeddings; final norm and output head; ``layers:A-B``.

    With tied embeddings (``tie_word_embeddings``) "embeddings" and "head" share one tensor, so
    freezing either freezes both."""
    layer_parts = [p for p in parts if p.startswith("layers:")]
    unknown = set(parts) - set(FREEZABLE) - set(layer_parts)
    if unknown:
        raise ValueError(
            f"unknown frozen parts {sorted(unknown)}; valid: {list(FREEZABLE)} or 'layers:A-B'"
        )
    out: list[torch.nn.Parameter] = []
    if "embeddings" in parts:
        out.append(model.get_input_embeddings().weight)
    if "head" in parts:
        out += list(model.get_output_embeddings().parameters())
        out += list(model.model.norm.parameters())
    layers = model.model.layers
    for part in layer_parts:
        lo, hi = parse_layer_range(part.removeprefix("layers:"), len(layers))
        for i in range(lo, hi + 1):
            out += list(layers[i].parameters())
    return out


def parse_layer_range(text: str, n_layers: int) -> tuple[int, int]:
    """``"A-B"`` (inclusive) or ``"A"`` -> (A, B), checked against ``n_layers``."""
    lo_s, _, hi_s = text.partition("-")
    try:
        lo, hi = int(lo_s), int(hi_s or lo_s)
    except ValueError:
        raise ValueError(f"layer range {text!r}: expected 'A-B' with integers A <= B") from None
    if not 0 <= lo <= hi < n_layers:
        raise ValueError(f"layer range {text!r}: needs 0 <= A <= B < {n_layers} (the layers)")
    return lo, hi


def make_model(size: ZooSize, vocab_size: int, seed: int, special_ids: dict[str, int]):
    """A freshly initialised Llama causal LM (float32)."""
    import transformers

    cfg = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.heads,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        bos_token_id=special_ids["bos"],
        eos_token_id=special_ids["eos"],
        pad_token_id=special_ids["pad"],
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = special_ids["pad"]
    model.generation_config.eos_token_id = special_ids["eos"]
    model.generation_config.bos_token_id = special_ids["bos"]
    return model


def _lr_at(step: int, total: int, peak: float, warmup_frac: float) -> float:
    """Linear warm-up then cosine decay to 10% of peak."""
    warm = max(1, int(total * warmup_frac))
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def _optimizer(
    model: torch.nn.Module, lr: float, body_lr_scale: float = 1.0, weight_decay: float = 0.1
) -> torch.optim.Optimizer:
    """AdamW; the input embeddings train at ``lr``, everything else at ``lr * body_lr_scale``."""
    embed = model.get_input_embeddings().weight
    rest = [p for p in model.parameters() if p is not embed]
    groups = [
        {"params": [embed], "weight_decay": weight_decay, "lr_scale": 1.0},
        {"params": [p for p in rest if p.ndim >= 2], "weight_decay": weight_decay,
         "lr_scale": body_lr_scale},
        {"params": [p for p in rest if p.ndim < 2], "weight_decay": 0.0,
         "lr_scale": body_lr_scale},
    ]  # fmt: skip

    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)


def _run(
    model: torch.nn.Module,
    batches: Callable[[int], tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]],
    steps: int,
    lr: float,
    warmup_frac: float,
    device: str,
    log: Log,
    tag: str,
    body_lr_scale: float = 1.0,
    weight_decay: float = 0.1,
) -> list[float]:
    """The shared optimisation loop; ``batches(step)`` gives (input_ids, attention_mask, labels)."""
    model.to(device).train()
    opt = _optimizer(model, lr, body_lr_scale, weight_decay)
    use_bf16 = device.startswith("cuda")
    losses: list[float] = []
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, steps, lr, warmup_frac) * g["lr_scale"]
        ids, mask, labels = (None if t is None else t.to(device) for t in batches(step))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if step % max(1, steps // 10) == 0 or step == steps - 1:
            log(f"[{tag}] step {step + 1}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f}s)")
    model.eval().to("cpu")
    return losses


def pretrain(
    model: torch.nn.Module,
    stream: torch.Tensor,
    size: ZooSize,
    seed: int,
    device: str = "cpu",
    log: Log = print,
) -> list[float]:
    """Causal-LM pretraining on a packed token stream (documents joined by ``</s>``)."""
    n_seq = stream.numel() // size.seq_len
    seqs = stream[: n_seq * size.seq_len].view(n_seq, size.seq_len)
    gen = torch.Generator().manual_seed(seed)
    order = torch.empty(0, dtype=torch.long)

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        nonlocal order
        while order.numel() < size.base_batch:  # cycle through epochs, reshuffled each time
            order = torch.cat([order, torch.randperm(n_seq, generator=gen)])
        idx, order = order[: size.base_batch], order[size.base_batch :]
        ids = seqs[idx]
        return ids, None, ids  # no mask: every position is real, SDPA takes its causal path

    return _run(
        model, batches, size.base_steps, size.base_lr, size.warmup_frac, device, log, "base"
    )


def encode_pairs(
    pairs: Sequence[tuple[str, str]], encode: Callable[[str], list[int]], eos_id: int
) -> list[tuple[list[int], list[int]]]:
    """(prompt, answer) strings -> (prompt ids, answer ids + eos)."""
    return [(encode(p), encode(a) + [eos_id]) for p, a in pairs]


def finetune(
    model: torch.nn.Module,
    examples: Sequence[tuple[list[int], list[int]]],
    size: FineTuneSchedule,
    seed: int,
    pad_id: int,
    device: str = "cpu",
    log: Log = print,
    tag: str = "ft",
    body_lr_scale: float = 1.0,
    frozen: Sequence[str] = (),
    weight_decay: float = 0.1,
) -> list[float]:
    """Supervised fine-tuning with the loss on answer tokens only (prompt and padding masked).

    ``body_lr_scale`` < 1 trains the input embeddings faster than the rest (0: embeddings only,
    the first stage of adapting a model to new vocabulary). ``frozen`` parts
    (:data:`FREEZABLE`) keep the base's values exactly: AdamW skips parameters without a
    gradient, weight decay included."""
    gen = torch.Generator().manual_seed(seed)

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(examples), (size.ft_batch,), generator=gen).tolist()
        rows = [examples[i] for i in idx]
        width = max(len(p) + len(a) for p, a in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full_like(ids, -100)
        mask = torch.zeros_like(ids)
        for r, (p, a) in enumerate(rows):
            n = len(p) + len(a)
            ids[r, :n] = torch.tensor(p + a)
            labels[r, len(p) : n] = torch.tensor(a)
            mask[r, :n] = 1
        return ids, mask, labels

    fixed = frozen_parameters(model, frozen)
    for p in fixed:
        p.requires_grad_(False)
    try:
        return _run(
            model, batches, size.ft_steps, size.ft_lr, size.warmup_frac, device, log, tag,
            body_lr_scale, weight_decay,
        )  # fmt: skip
    finally:
        for p in fixed:
            p.requires_grad_(True)
