"""Python fitness functions the tests name in configs (``fitness.function``)."""

from __future__ import annotations

from typing import Any


def mean_logit_norm(model: Any, tokenizer: Any) -> float:
    """A cheap number that differs between candidates: the first token's logit spread."""
    import torch

    ids = tokenizer("1 2 3", return_tensors="pt")["input_ids"].to(model.device)
    logits = model(input_ids=ids).logits[0, -1]
    return float(torch.sigmoid(logits.std()))


def two_numbers(model: Any, tokenizer: Any) -> dict[str, float]:
    spread = mean_logit_norm(model, tokenizer)
    return {"spread": spread, "half": spread / 2}


def not_a_number(model: Any, tokenizer: Any) -> str:
    return "high"


def slow_logit_norm(model: Any, tokenizer: Any) -> float:
    """:func:`mean_logit_norm` after a second's sleep: a trial long enough that a worker
    started mid-run still finds trials left (the fleet restart test)."""
    import time

    time.sleep(1.0)
    return mean_logit_norm(model, tokenizer)
