"""``mergekit_evo`` (EngineLM) generates and scores exactly as lm-eval's ``hf`` model (CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers

from mergekit_evo.fitness import FitnessEvaluator

ZOO = Path(__file__).resolve().parents[2] / "fixtures" / "zoo"


@pytest.fixture(scope="module")
def math_model():
    model = transformers.AutoModelForCausalLM.from_pretrained(ZOO / "math", dtype=torch.float32)
    tok = transformers.AutoTokenizer.from_pretrained(ZOO / "math")
    return model.eval(), tok


def _spec(engine: str, **kw) -> dict:
    return {
        "tasks": [{"name": "zoo_target_search", "metric": "exact_match,flexible-extract"}],
        "include_path": [str(ZOO / "tasks")],
        "limit": 40,
        "num_fewshot": 0,
        "max_gen_toks": 24,
        "batch_size": 16,
        "engine": engine,
        **kw,
    }


def test_engine_scores_equal_hf_on_the_zoo(math_model) -> None:
    model, tok = math_model
    hf = FitnessEvaluator(_spec("hf")).score(model, tok)
    ours = FitnessEvaluator(_spec("mergekit_evo")).score(model, tok)
    assert ours.per_task == hf.per_task
    assert 0.0 < ours.score < 1.0  # a real score, not all right or all wrong


def test_engine_generations_equal_hf_with_stop_strings(math_model) -> None:
    from lm_eval.api.instance import Instance

    from mergekit_evo.fitness.fast_lm import EngineLM

    model, tok = math_model
    ev = FitnessEvaluator(_spec("mergekit_evo"))
    task = ev.tasks["zoo_target_search"]
    docs = list(task.eval_docs)[:20]
    # a stop string the model does emit mid-answer, and the task's own
    kwargs = {"until": ["\n", " 1", "Question:"], "max_gen_toks": 24, "do_sample": False}
    reqs = [
        Instance("generate_until", d, (task.doc_to_text(d), dict(kwargs)), i)
        for i, d in enumerate(docs)
    ]
    from lm_eval.models.huggingface import HFLM

    want = HFLM(pretrained=model, tokenizer=tok, batch_size=8).generate_until(reqs)
    lm = EngineLM(pretrained=model, tokenizer=tok, batch_size=8)
    got = lm.generate_until(reqs)
    assert lm.engine_batches > 0
    assert got == want
    assert any(" 1" not in g and len(g) < 60 for g in got)  # the stop strings did cut


def test_engine_is_registered_with_lm_eval() -> None:
    from lm_eval.api.registry import get_model

    from mergekit_evo.fitness.fast_lm import MODEL_NAME, EngineLM

    assert get_model(MODEL_NAME) is EngineLM


def test_auto_engine_is_hf_on_cpu() -> None:
    from mergekit_evo.fitness import FitnessSpec

    assert not FitnessSpec.model_validate(_spec("auto")).uses_engine()
    assert FitnessSpec.model_validate(_spec("auto", device="cuda:0")).uses_engine()


def test_reused_requests_and_encodings_keep_scores_per_model(math_model) -> None:
    import transformers

    model, tok = math_model
    verbs = transformers.AutoModelForCausalLM.from_pretrained(ZOO / "verbs", dtype=torch.float32)
    ev = FitnessEvaluator(_spec("mergekit_evo"))
    first = ev.score(model, tok).per_task
    other = ev.score(verbs.eval(), tok).per_task
    again = ev.score(model, tok).per_task
    assert again == first  # nothing of the other model's responses leaked into the reused requests
    assert other != first


@pytest.mark.parametrize("engine", ["hf", "mergekit_evo"])
def test_nan_weights_fail_the_score_with_a_reason(math_model, engine: str) -> None:
    import copy

    model, tok = math_model
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.model.layers[0].mlp.down_proj.weight.fill_(float("nan"))
    with pytest.raises(Exception, match="non-finite logits"):
        FitnessEvaluator(_spec(engine, limit=4)).score(broken, tok)
    assert FitnessEvaluator(_spec(engine, limit=4)).score(model, tok).score >= 0.0
