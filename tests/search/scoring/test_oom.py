"""Out of GPU memory while scoring: one retry at half the batch, then a failed trial (with its
reason in trials.csv), never a dead search.  torch.cuda.OutOfMemoryError is raised by hand, so
this runs on CPU."""

from __future__ import annotations

import csv
from typing import Any

import pytest
import torch

from mergekit_evo.config import load_search_config
from mergekit_evo.fitness.evaluator import FitnessEvaluator
from mergekit_evo.search.run.runner import run_search
from mergekit_evo.search.scoring.failures import SearchFailed
from mergekit_evo.search.scoring.oom import (
    CandidateOutOfMemory,
    is_out_of_memory,
    score_with_oom_retry,
)
from tests.search.family import write_config


def _oom() -> torch.cuda.OutOfMemoryError:
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_retry_once_at_half_the_batch():
    seen: list[int | None] = []

    def score(bs: int | None) -> str:
        seen.append(bs)
        if bs is None:
            raise _oom()
        return f"scored at {bs}"

    lines: list[str] = []
    assert score_with_oom_retry(score, 8, lines.append) == "scored at 4"
    assert seen == [None, 4]
    assert lines == ["out of memory at batch size 8; retrying once at 4"]


def test_second_oom_fails_with_a_reason():
    def score(bs: int | None) -> None:
        raise _oom()

    with pytest.raises(CandidateOutOfMemory, match="at batch size 1 and again at 1"):
        score_with_oom_retry(score, 1)


def test_other_errors_are_not_retried():
    calls = []

    def score(bs: int | None) -> None:
        calls.append(bs)
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError):
        score_with_oom_retry(score, 8)
    assert calls == [None]


@pytest.mark.parametrize(
    ("err", "oom"),
    [
        (_oom(), True),
        (RuntimeError("MPS backend out of memory"), True),
        (RuntimeError("expected scalar type Float"), False),
        (MemoryError(), False),  # host RAM: not a batch-size problem
    ],
)
def test_what_counts_as_out_of_memory(err: BaseException, oom: bool):
    assert is_out_of_memory(err) is oom


def test_search_retries_then_fails_trials_and_goes_on(family, tmp_path, monkeypatch):
    original = FitnessEvaluator.score
    seen: list[int | None] = []

    def tight(
        self: FitnessEvaluator, model: Any, tokenizer: Any, batch_size: int | None = None, **kw
    ):
        seen.append(batch_size)
        if batch_size is None or len(seen) > 2:  # trial 0 fits at half; later trials never fit
            raise _oom()
        return original(self, model, tokenizer, batch_size=batch_size, **kw)

    monkeypatch.setattr(FitnessEvaluator, "score", tight)
    cfg = load_search_config(
        write_config(
            tmp_path / "ps.yml",
            family,
            "ps",
            baselines=False,
            budget={"max_trials": 3, "max_consecutive_failures": None},
        )
    )
    res = run_search(cfg, tmp_path / "run", log=lambda s: None)
    assert seen[:2] == [None, 2]  # fitness.batch_size 4, halved once
    rows = list(csv.DictReader((tmp_path / "run" / "trials.csv").open()))
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL", "FAIL"]
    assert (
        "CandidateOutOfMemory: out of accelerator memory at batch size 4 and again at 2"
        in (rows[1]["fail_reason"])
    )
    assert res.metrics["champion_trial"] == 0


def test_a_search_that_never_fits_stops_nonzero(family, tmp_path, monkeypatch):
    def never(
        self: FitnessEvaluator, model: Any, tokenizer: Any, batch_size: int | None = None, **kw
    ):
        raise _oom()

    monkeypatch.setattr(FitnessEvaluator, "score", never)
    cfg = load_search_config(
        write_config(
            tmp_path / "ps.yml",
            family,
            "ps",
            baselines=False,
            budget={"max_trials": 9, "max_consecutive_failures": 2},
        )
    )
    with pytest.raises(SearchFailed, match="2x CandidateOutOfMemory"):
        run_search(cfg, tmp_path / "run", log=lambda s: None)
    assert not (tmp_path / "run" / "best.yml").exists()


def test_source_models_get_the_retry_too():
    """Baselines and report scores go through score_model: one retry at half the batch."""
    from types import SimpleNamespace

    from mergekit_evo.candidate.base import Candidate, CandidateBuilder
    from mergekit_evo.search.run.baselines import score_model

    class Loader(CandidateBuilder):
        def build(self, recipe: dict[str, Any], workdir: Any) -> Candidate:
            raise NotImplementedError

        def load(self, model_path: str) -> Candidate:
            return Candidate(model=model_path, tokenizer="tok")

    sizes: list[int | None] = []

    class TightScorer:
        cfg = SimpleNamespace(batch_size=8)

        def score(self, model: Any, tokenizer: Any, batch_size: int | None = None):
            sizes.append(batch_size)
            if batch_size is None:
                raise _oom()
            return 0.5, [0.5], {}

    assert score_model(Loader(), TightScorer(), "src") == (0.5, [0.5], {})  # type: ignore[arg-type]
    assert sizes == [None, 4]
