"""Shipped tasks: YAML in sync with the registry, documented subsets, splits, data loading."""

from __future__ import annotations

import json

import pytest

from mergekit_evo.fitness import data
from mergekit_evo.fitness.errors import FitnessError
from mergekit_evo.fitness.registry import (
    SHIPPED_TASKS,
    TASKS_DIR,
    is_report_split,
    render_task_yaml,
)

from .conftest import DATA

LANGS = data.MGSM_LANGUAGES


def test_yaml_files_match_registry() -> None:
    on_disk = {p.stem for p in TASKS_DIR.glob("*.yaml")}
    assert on_disk == set(SHIPPED_TASKS)
    for task in SHIPPED_TASKS.values():
        assert task.yaml_path.read_text(encoding="utf-8") == render_task_yaml(task), (
            f"{task.yaml_path} is stale: run python -m mergekit_evo.fitness.registry"
        )


def test_required_task_names_exist() -> None:
    required = {"evo_gsm8k", "evo_gsm8k_search", "evo_gsm8k_search_loglik"}
    for lang in ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh"):
        required |= {
            f"evo_mgsm_direct_{lang}",
            f"evo_mgsm_native_cot_{lang}",
            f"evo_mgsm_direct_{lang}_search",
            f"evo_mgsm_direct_{lang}_heldout",
        }
    assert required <= set(SHIPPED_TASKS)


@pytest.mark.parametrize(
    ("name", "report"),
    [
        ("evo_gsm8k", True),
        ("evo_mgsm_direct_ja", True),
        ("evo_mgsm_native_cot_zh", True),
        ("evo_mgsm_direct_ja_heldout", True),
        ("gsm8k", True),
        ("gsm8k_cot", True),
        ("mgsm_direct_ja", True),
        ("mgsm_native_cot_en", True),
        ("evo_gsm8k_search", False),
        ("evo_gsm8k_search_loglik", False),
        ("evo_mgsm_direct_ja_search", False),
        ("zoo_target_search", False),
    ],
)
def test_is_report_split(name: str, report: bool) -> None:
    assert is_report_split(name) is report


def test_gsm8k_subsets_are_the_documented_rows() -> None:
    ds = data.gsm8k_dataset()
    lines = (DATA / "gsm8k" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    train_q = [json.loads(line)["question"] for line in lines]
    assert len(ds["test"]) == SHIPPED_TASKS["evo_gsm8k"].size == 1319
    assert ds["search"]["question"] == train_q[:1000]
    assert len(ds["search"]) == SHIPPED_TASKS["evo_gsm8k_search"].size
    # the few-shot pool of the search task never contains a searched question
    assert not set(ds["search_fewshot"]["question"]) & set(ds["search"]["question"])
    assert len(ds["search_fewshot"]) + len(ds["search"]) == len(train_q)


@pytest.mark.parametrize("lang", ["ja", "en", "th"])
def test_mgsm_search_and_heldout_are_disjoint_and_cover_all(lang: str) -> None:
    ds = data.mgsm_dataset(lang=lang)
    rows = (DATA / "mgsm" / f"mgsm_{lang}.tsv").read_text(encoding="utf-8").splitlines()
    questions = [r.rsplit("\t", 1)[0] for r in rows]
    assert ds["test"]["question"] == questions
    assert ds["search"]["question"] == questions[:100]
    assert ds["heldout"]["question"] == questions[100:250]
    assert len(ds["search"]) == SHIPPED_TASKS[f"evo_mgsm_direct_{lang}_search"].size
    assert len(ds["heldout"]) == SHIPPED_TASKS[f"evo_mgsm_direct_{lang}_heldout"].size
    assert ds["test"][0]["answer"] is None  # MGSM prompt then uses its test-doc prefix
    assert all(isinstance(n, int) for n in ds["test"]["answer_number"])


def test_missing_data_folder_is_a_clear_error(monkeypatch, tmp_path) -> None:
    missing = tmp_path / "nope"
    monkeypatch.setenv(data.DATA_ENV, str(missing))
    with pytest.raises(FitnessError, match=r"MERGEKIT_EVO_DATA=.*nope.* is not a folder"):
        data.gsm8k_dataset()


def test_missing_data_file_names_what_is_there(monkeypatch, tmp_path) -> None:
    (tmp_path / "mgsm").mkdir()
    (tmp_path / "mgsm" / "mgsm_en.tsv").write_text("q\t1\n", encoding="utf-8")
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    with pytest.raises(FitnessError, match=r"mgsm_ja\.tsv is missing.*mgsm_en\.tsv"):
        data.mgsm_dataset(lang="ja")


def test_without_local_data_the_hub_datasets_are_used(monkeypatch) -> None:
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, **kw):
        calls.append((path, name))
        if path == "openai/gsm8k":
            row = {"question": "q?", "answer": "a\n#### 1"}
            return datasets.DatasetDict(
                train=datasets.Dataset.from_list([row] * 1200),
                test=datasets.Dataset.from_list([row] * 3),
            )
        row = {"question": "q?", "answer": None, "answer_number": 1, "equation_solution": None}
        return datasets.DatasetDict(
            train=datasets.Dataset.from_list([row] * 8),
            test=datasets.Dataset.from_list([row] * 250),
        )

    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data._gsm8k.cache_clear()
    data._mgsm.cache_clear()
    try:
        gsm = data.gsm8k_dataset()
        mgsm = data.mgsm_dataset(lang="de")
    finally:  # keep the fakes out of later tests
        data._gsm8k.cache_clear()
        data._mgsm.cache_clear()
    assert calls == [("openai/gsm8k", "main"), ("juletxara/mgsm", "de")]
    assert (len(gsm["search"]), len(gsm["search_fewshot"])) == (1000, 200)
    assert (len(mgsm["train"]), len(mgsm["search"]), len(mgsm["heldout"])) == (8, 100, 150)


def test_every_shipped_task_resolves_in_lm_eval_task_manager() -> None:
    """The index lm-eval builds from the folder `mergekit-evo tasks --include-path` prints."""
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    assert set(SHIPPED_TASKS) <= set(tm.all_subtasks)


def test_shipped_configs_keep_lm_eval_prompts_and_filters() -> None:
    """Built on lm-eval's own YAML: prompt, stop sequences and filters come from lm-eval."""
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    loaded = tm.load(["evo_gsm8k", "evo_mgsm_native_cot_ja", "evo_mgsm_direct_ja_search"])["tasks"]
    gsm = loaded["evo_gsm8k"]
    assert gsm.config.doc_to_text == "Question: {{question}}\nAnswer:"
    assert [f["name"] for f in gsm.config.filter_list] == [
        "strict-match",
        "flexible-extract",
        "numeric",
    ]
    assert gsm.config.num_fewshot == 5 and gsm.config.fewshot_split == "train"
    cot = loaded["evo_mgsm_native_cot_ja"]
    assert (
        cot.config.filter_list[0]["filter"][0]["regex_pattern"] == "答えは(\\-?[0-9\\.\\,]+)です。"
    )
    assert "問題：" in cot.config.generation_kwargs["until"]
    search = loaded["evo_mgsm_direct_ja_search"]
    doc = next(iter(search.eval_docs))
    assert search.doc_to_text(doc).startswith("問題： ジャネットのアヒル")
    assert len(search.eval_docs) == 100


@pytest.mark.parametrize("name", ["evo_gsm8k_search_loglik", "evo_mgsm_direct_ja_search_loglik"])
def test_loglik_proxy_scores_the_answer_after_a_space(name: str) -> None:
    """lm-eval ignores target_delimiter for loglikelihood: the space must be in the target,
    or a BPE tokenizer scores '72' glued to 'Answer:' instead of ' 72'."""
    from lm_eval.tasks import TaskManager

    from mergekit_evo.fitness import TASKS_DIR

    task = TaskManager(include_path=str(TASKS_DIR), include_defaults=False).load_task_or_group(
        [name]
    )[name]
    task.build_all_requests(limit=2, rank=0, world_size=1)
    for inst in task.instances:
        context, continuation = inst.args
        assert context.endswith("Answer:"), context[-20:]
        assert continuation.startswith(" ") and continuation.strip().lstrip("-").isdigit()
