"""The search's scorer on the committed zoo's real tasks: fitness questions, rungs and the
confirm slice are disjoint, and none of them is a report (held-out) question; a confirm slice
that does not fit is refused naming the field; multi-fidelity combines to the full score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mergekit_evo.config import ConfigError, ConfirmConfig, FitnessConfig
from mergekit_evo.search.scoring.scorer import Scorer

ZOO = Path(__file__).resolve().parents[3] / "fixtures" / "zoo-paths"
TASK = {"name": "zoo_target_search", "metric": "exact_match,flexible-extract"}


def _fitness(**kw: object) -> FitnessConfig:
    return FitnessConfig(
        tasks=[TASK], include_path=[str(ZOO / "tasks")], num_fewshot=0, max_gen_toks=16, **kw
    )


def _questions(split: str) -> list[str]:
    rows = (ZOO / "data" / f"{split}.jsonl").read_text().splitlines()
    return [json.loads(r)["question"] for r in rows if r]


def test_confirm_slice_is_disjoint_from_fitness_and_report_questions() -> None:
    scorer = Scorer(
        _fitness(limit=200, fidelity={"rungs": [0.25, 0.5, 1.0]}),
        "cpu",
        confirm=ConfirmConfig(questions=300),
    )
    plan = scorer.plan
    fit, conf = plan.fitness["zoo_target_search"], plan.confirm["zoo_target_search"]
    assert (fit, conf) == (range(0, 200), range(200, 500))
    assert [len(r["zoo_target_search"]) for r in plan.rungs] == [50, 50, 100]
    search = _questions("target_search")
    fitness_q = {search[i] for i in fit}
    confirm_q = {search[i] for i in conf}
    heldout = set(_questions("target_heldout"))
    assert len(confirm_q) == 300 and not confirm_q & fitness_q
    assert not (confirm_q | fitness_q) & heldout
    assert scorer.n_confirm == 300


def test_auto_confirm_takes_what_the_split_leaves() -> None:
    assert Scorer(_fitness(limit=900), "cpu", confirm=ConfirmConfig()).n_confirm == 100
    assert Scorer(_fitness(limit=None), "cpu", confirm=ConfirmConfig()).n_confirm == 0
    assert Scorer(_fitness(limit=100), "cpu", confirm=ConfirmConfig(questions=0)).n_confirm == 0


def test_a_confirm_slice_that_does_not_fit_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^invalid search config: confirm.questions: .*150"):
        Scorer(_fitness(limit=850), "cpu", confirm=ConfirmConfig(questions=200))


def test_rungs_add_up_to_the_full_fitness() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(ZOO / "math")
    tok = AutoTokenizer.from_pretrained(ZOO / "math")
    full = Scorer(_fitness(limit=60, batch_size=64), "cpu")
    sliced = Scorer(_fitness(limit=60, batch_size=64, fidelity={"rungs": [0.5, 1.0]}), "cpu")
    heard: list[tuple[int, float]] = []
    got = sliced.score_candidate(model, tok, on_rung=lambda n, f: heard.append((n, f)))
    fitness, _, _ = full.score(model, tok)
    assert got.fitness == pytest.approx(fitness) and got.questions == 60
    assert [n for n, _ in heard] == [30]  # after every rung but the last
