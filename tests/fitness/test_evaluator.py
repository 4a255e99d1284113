"""FitnessEvaluator end to end on the real GSM8K/MGSM files with scripted lm-eval LMs.

The oracle answers every prompt with the gold response of the question it finds in the prompt,
so any score below 1.0 is a bug in data loading, prompting, filtering or scoring.
"""

from __future__ import annotations

import json
import math

import pytest

from mergekit_evo.fitness import FitnessError, FitnessEvaluator, FitnessSpec, TaskSpec

from .conftest import ScriptedLM

CORE = ["evo_gsm8k", "evo_gsm8k_search", "evo_mgsm_direct_ja", "evo_mgsm_direct_en"]
LIMIT = 12


def _gold_number(gold: str) -> str:
    return gold.split("####")[-1].strip()


def _oracle(q: str, gold: str) -> str:
    return gold


def _wrong(q: str, gold: str) -> str:
    return f"The answer is {float(_gold_number(gold).replace(',', '')) + 1:g}."


def _half(q: str) -> bool:
    return len(q) % 2 == 0  # a fixed, data-dependent subset of questions


def _mixed(q: str, gold: str) -> str:
    return _oracle(q, gold) if _half(q) else _wrong(q, gold)


@pytest.fixture(scope="module")
def core() -> FitnessEvaluator:
    spec = FitnessSpec(
        tasks=[TaskSpec(name=n, weight=w) for n, w in zip(CORE, [1, 3, 2, 1], strict=True)],
        limit=LIMIT,
        allow_report_split=True,
    )
    return FitnessEvaluator(spec)


def test_oracle_scores_one_wrong_scores_zero(core: FitnessEvaluator, scripted: ScriptedLM) -> None:
    good = core.score_lm(scripted.make(_oracle))
    assert good.score == 1.0
    for name in CORE:
        assert good.per_task[name]["exact_match,numeric"] == 1.0
        assert good.per_task[name]["exact_match,flexible-extract"] == 1.0  # lm-eval's filter
    bad = core.score_lm(scripted.make(_wrong))
    assert bad.score == 0.0
    assert all(bad.per_task[n]["exact_match,numeric"] == 0.0 for n in CORE)


def test_mixed_model_scores_the_exact_fraction(
    core: FitnessEvaluator, scripted: ScriptedLM
) -> None:
    res = core.score_lm(scripted.make(_mixed))
    expected = {}
    for name, task in core.tasks.items():
        docs = list(task.eval_docs)[:LIMIT]
        expected[name] = sum(_half(d["question"]) for d in docs) / len(docs)
        assert res.per_task[name]["exact_match,numeric"] == pytest.approx(expected[name])
    assert 0 < min(expected.values()) and max(expected.values()) < 1  # a real mix
    weights = {t.name: t.weight for t in core.spec.tasks}
    mean = sum(weights[n] * expected[n] for n in CORE) / sum(weights.values())
    assert res.score == pytest.approx(mean)


def test_result_is_plain_json_floats(core: FitnessEvaluator, scripted: ScriptedLM) -> None:
    res = core.score_lm(scripted.make(_mixed))
    assert type(res.score) is float and res.seconds > 0
    for metrics in res.per_task.values():
        assert metrics and all(type(v) is float for v in metrics.values())
        assert all("," in k and "stderr" not in k for k in metrics)
    assert json.loads(json.dumps(res.to_dict()))["per_task"] == res.per_task
    assert res.metrics == {n: "exact_match,numeric" for n in CORE}


def test_tasks_are_built_once_and_scoring_is_repeatable(
    core: FitnessEvaluator, scripted: ScriptedLM
) -> None:
    tasks = dict(core.tasks)
    first = core.score_lm(scripted.make(_mixed))
    second = core.score_lm(scripted.make(_mixed))
    assert first.per_task == second.per_task
    assert all(core.tasks[n] is tasks[n] for n in tasks)


def test_scoring_leaves_the_callers_global_rngs_alone(
    core: FitnessEvaluator, scripted: ScriptedLM
) -> None:
    """An optimiser sampling from numpy's global RNG (pycma) must not be reset per score."""
    import random

    import numpy as np
    import torch

    np.random.seed(123)
    random.seed(123)
    torch.manual_seed(123)
    expected = (np.random.rand(), random.random(), torch.rand(1).item())
    np.random.seed(123)
    random.seed(123)
    torch.manual_seed(123)
    core.score_lm(scripted.make(_mixed))
    assert (np.random.rand(), random.random(), torch.rand(1).item()) == expected


def test_jinja_templates_are_compiled_once_not_per_question(
    core: FitnessEvaluator, scripted: ScriptedLM, monkeypatch
) -> None:
    """lm-eval compiles a task's target template for every question and filter (12 questions x
    3 filters x 4 tasks here); scoring compiles each template once, for every candidate, and
    gives the same scores; lm-eval's own ``apply_template`` is back afterwards."""
    from lm_eval import utils

    from mergekit_evo.fitness import evaluator as E

    compiled: list[str] = []
    real = utils.env.from_string
    monkeypatch.setattr(utils.env, "from_string", lambda t, *a, **k: compiled.append(t) or
                        real(t, *a, **k))  # fmt: skip
    E._compiled_template.cache_clear()
    original = utils.apply_template
    first = core.score_lm(scripted.make(_mixed))
    n = len(compiled)
    assert 0 < n <= len(set(compiled)) and n < LIMIT  # one compilation per distinct template
    assert core.score_lm(scripted.make(_mixed)).per_task == first.per_task
    assert len(compiled) == n  # the next candidate compiles nothing
    assert utils.apply_template is original
    with E.compiled_templates():
        doc = {"answer": "so 3 + 4 = 7\n#### 7", "question": "q"}
        template = "{{answer.split('####')[-1].strip()}}"
        assert utils.apply_template(template, doc) == original(template, doc) == "7"
    assert utils.apply_template is original


def test_lm_eval_metric_keys_and_native_cot(scripted: ScriptedLM) -> None:
    ev = FitnessEvaluator(
        FitnessSpec(
            tasks=[TaskSpec(name="evo_mgsm_native_cot_ja", metric="exact_match,strict-match")],
            limit=6,
            allow_report_split=True,
        )
    )
    ja = ev.score_lm(scripted.make(lambda q, g: f"ステップごとに考えます。答えは{g}です。"))
    assert ja.score == 1.0
    # the strict lm-eval filter wants the Japanese phrase; numeric extraction does not
    en = ev.score_lm(scripted.make(lambda q, g: f"The answer is {g}."))
    assert en.score == 0.0
    assert en.per_task["evo_mgsm_native_cot_ja"]["exact_match,numeric"] == 1.0


def test_require_language_counts_only_answers_in_that_language(scripted: ScriptedLM) -> None:
    ev = FitnessEvaluator(
        FitnessSpec(
            tasks=[TaskSpec(name="evo_mgsm_native_cot_ja", require_language="ja")],
            limit=6,
            allow_report_split=True,
        )
    )
    key = "exact_match,numeric-lang_ja"
    assert ev.metrics["evo_mgsm_native_cot_ja"] == key
    ja = ev.score_lm(scripted.make(lambda q, g: f"卵を売って毎日稼ぎます。答えは{g}です。"))
    en = ev.score_lm(scripted.make(lambda q, g: f"She sells the eggs. The answer is {g}."))
    wrong_ja = ev.score_lm(scripted.make(lambda q, g: "卵を売って毎日稼ぎます。答えは-1です。"))
    assert (ja.score, en.score, wrong_ja.score) == (1.0, 0.0, 0.0)
    assert en.per_task["evo_mgsm_native_cot_ja"]["exact_match,numeric"] == 1.0  # ungated


def test_loglik_proxy_ranks_the_gold_answer_first(scripted: ScriptedLM) -> None:
    ev = FitnessEvaluator(
        FitnessSpec(tasks=["evo_gsm8k_search_loglik", "evo_mgsm_direct_ja_search_loglik"], limit=5)
    )
    good = ev.score_lm(scripted.make(_oracle))
    bad = ev.score_lm(scripted.make(_wrong))
    assert good.per_task["evo_gsm8k_search_loglik"] == {"loglik,none": 0.0, "acc,none": 1.0}
    assert bad.per_task["evo_gsm8k_search_loglik"] == {"loglik,none": -10.0, "acc,none": 0.0}
    assert good.score > bad.score


def test_score_scores_an_in_memory_hf_model(tiny_model_dir) -> None:
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = transformers.AutoTokenizer.from_pretrained(tiny_model_dir)
    ev = FitnessEvaluator(
        FitnessSpec(
            tasks=["evo_gsm8k_search", "evo_gsm8k_search_loglik"],
            limit=2,
            num_fewshot=0,
            max_gen_toks=4,
            batch_size=2,
        )
    )
    res = ev.score(model, tok)
    assert 0.0 <= res.per_task["evo_gsm8k_search"]["exact_match,numeric"] <= 1.0
    loglik = res.per_task["evo_gsm8k_search_loglik"]["loglik,none"]
    assert loglik < 0 and math.isfinite(loglik)  # a random model gives the answer P < 1
    assert res.score == pytest.approx(
        (res.per_task["evo_gsm8k_search"]["exact_match,numeric"] + loglik) / 2
    )


# ---------------------------------------------------------------- bad input


def test_unknown_task_lists_closest_and_shipped() -> None:
    with pytest.raises(FitnessError) as info:
        FitnessEvaluator(FitnessSpec(tasks=["evo_gsm8k_serch"]))
    text = str(info.value)
    assert "'evo_gsm8k_serch'" in text
    assert "Closest: ['evo_gsm8k_search'" in text
    assert "evo_mgsm_direct_ja_search" in text  # what exists


def test_metric_not_produced_names_what_the_task_produces() -> None:
    spec = FitnessSpec(tasks=[TaskSpec(name="evo_gsm8k_search", metric="acc,none")])
    with pytest.raises(FitnessError) as info:
        FitnessEvaluator(spec)
    text = str(info.value)
    assert "'acc,none'" in text and "evo_gsm8k_search" in text
    for produced in (
        "exact_match,strict-match",
        "exact_match,flexible-extract",
        "exact_match,numeric",
    ):
        assert produced in text


def test_missing_data_folder(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MERGEKIT_EVO_DATA", str(tmp_path / "missing"))
    with pytest.raises(FitnessError, match="MERGEKIT_EVO_DATA=.*missing.* is not a folder"):
        FitnessEvaluator(FitnessSpec(tasks=["evo_gsm8k_search"]))


def test_report_split_refused_for_search() -> None:
    with pytest.raises(FitnessError, match="allow_report_split"):
        FitnessEvaluator(FitnessSpec(tasks=["evo_mgsm_direct_ja"]))


def test_fewshot_without_exemplars_is_refused() -> None:
    spec = FitnessSpec(tasks=["evo_mgsm_direct_ja_search"], num_fewshot=2)
    with pytest.raises(FitnessError, match="num_fewshot=2.*use num_fewshot=0"):
        FitnessEvaluator(spec)


def test_require_language_on_loglik_task_is_refused() -> None:
    spec = FitnessSpec(tasks=[TaskSpec(name="evo_gsm8k_search_loglik", require_language="en")])
    with pytest.raises(FitnessError, match="generation task"):
        FitnessEvaluator(spec)


def test_stock_task_without_hub_access_explains_the_data_folder(monkeypatch) -> None:
    """A stock lm-eval task resolves through lm-eval's own index; offline its hub data fail."""
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("offline: no hub access")

    monkeypatch.setattr(datasets, "load_dataset", offline)  # offline even if the env is not
    spec = FitnessSpec(tasks=["gsm8k"], limit=1, allow_report_split=True)
    with pytest.raises(FitnessError) as info:
        FitnessEvaluator(spec)
    assert "could not build tasks ['gsm8k']" in str(info.value)
    assert "offline: no hub access" in str(info.value)


def test_oracle_scores_one_on_every_shipped_generation_task(scripted: ScriptedLM) -> None:
    from mergekit_evo.fitness.registry import SHIPPED_TASKS

    names = [n for n, t in SHIPPED_TASKS.items() if not t.loglik]
    ev = FitnessEvaluator(FitnessSpec(tasks=names, limit=2, allow_report_split=True))
    res = ev.score_lm(scripted.make(_oracle))
    below = {n: m for n, m in res.per_task.items() if m["exact_match,numeric"] != 1.0}
    assert not below
    assert res.score == 1.0
