"""Out of GPU memory while scoring (one retry at half the batch) or merging (one retry after
freeing cached memory), then a failed trial (with its reason in trials.csv), never a dead
search.  torch.cuda.OutOfMemoryError is raised by hand, so this runs on CPU."""

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
    build_with_oom_retry,
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
        self: FitnessEvaluator, model: Any, tokenizer: Any, batch_size: int | None = None, **kw: Any
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
            start_points={"enabled": False},  # one start point: trial 0 is x0
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
        self: FitnessEvaluator, model: Any, tokenizer: Any, batch_size: int | None = None, **kw: Any
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


def test_merge_retries_once_then_fails_with_a_reason():
    calls: list[int] = []

    def build() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise _oom()
        return "built"

    lines: list[str] = []
    assert build_with_oom_retry(build, lines.append) == "built" and len(calls) == 2
    assert lines == ["out of memory while merging; retrying once after freeing cached memory"]

    def never() -> str:
        raise _oom()

    with pytest.raises(CandidateOutOfMemory, match="while merging, and again"):
        build_with_oom_retry(never)
    with pytest.raises(ValueError):  # not memory: no retry, the error as it is
        build_with_oom_retry(lambda: (_ for _ in ()).throw(ValueError("bad recipe")))


def test_search_retries_a_merge_then_fails_its_trial_and_goes_on(family, tmp_path, monkeypatch):
    """Out of memory in MergeKit (the disk builder) gets the retry scoring gets: trial 0
    merges on the second try, every later merge runs out twice and fails its trial."""
    from mergekit_evo.candidate.disk import DiskCandidateBuilder

    original = DiskCandidateBuilder.merge
    merges: list[str] = []

    def tight(self: DiskCandidateBuilder, recipe: dict[str, Any], out: Any) -> Any:
        merges.append(str(out))
        if len(merges) != 2:  # the first attempt of trial 0 and everything after trial 0
            raise _oom()
        return original(self, recipe, out)

    monkeypatch.setattr(DiskCandidateBuilder, "merge", tight)
    cfg = load_search_config(
        write_config(
            tmp_path / "ps.yml",
            family,
            "ps",
            baselines=False,
            candidates="disk",
            start_points={"enabled": False},
            budget={"max_trials": 3, "max_consecutive_failures": None},
        )
    )
    lines: list[str] = []
    res = run_search(cfg, tmp_path / "run", log=lines.append)
    rows = list(csv.DictReader((tmp_path / "run" / "trials.csv").open()))
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL", "FAIL"]
    assert "CandidateOutOfMemory: out of accelerator memory while merging" in rows[1]["fail_reason"]
    # two attempts per trial, and two for the confirm step's re-score of trial 0 (the best),
    # which runs out of memory twice too: that fails the confirm, not the search
    assert len(merges) == 8
    assert sum("retrying once after freeing" in s for s in lines) == 4
    assert any(s.startswith("confirm trial     0  FAILED  CandidateOutOfMemory") for s in lines), (
        lines
    )
    assert res.metrics["champion_trial"] == 0
