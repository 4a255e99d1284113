"""FitnessSpec/TaskSpec validation: field errors name the field, the value and what is valid."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from mergekit_evo.fitness import FitnessError, FitnessSpec, TaskSpec


def test_defaults_and_task_names_as_strings() -> None:
    spec = FitnessSpec(tasks="evo_gsm8k_search, evo_mgsm_direct_ja_search")
    assert [t.name for t in spec.tasks] == ["evo_gsm8k_search", "evo_mgsm_direct_ja_search"]
    assert spec.tasks[0].weight == 1.0
    assert spec.tasks[0].resolved_metric == "exact_match,numeric"
    assert TaskSpec(name="evo_gsm8k_search_loglik").resolved_metric == "loglik,none"
    assert TaskSpec(name="gsm8k").resolved_metric is None  # stock task: its first metric
    assert FitnessSpec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"metric": "exact_match"}, "metric", ["'exact_match'", "metric,filter"]),
        ({"require_language": "jp"}, "require_language", ["'jp'", "ja"]),
        ({"weight": -1}, "weight", ["-1", "greater than or equal to 0"]),
    ],
)
def test_task_field_errors(kwargs: dict, field: str, words: list[str]) -> None:
    with pytest.raises(ValidationError) as info:
        TaskSpec(name="evo_gsm8k_search", **kwargs)
    text = str(info.value)
    assert field in text
    for word in words:
        assert word in text


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"limit": 0}, "limit", ["greater than 0"]),
        ({"limit": 2.5}, "limit", ["2.5", "fraction"]),
        ({"batch_size": 0}, "batch_size", ["greater than or equal to 1"]),
        ({"num_fewshot": -1}, "num_fewshot", ["greater than or equal to 0"]),
        ({"tasks": []}, "tasks", ["at least 1"]),
        ({"tasks": ["evo_gsm8k_search", "evo_gsm8k_search"]}, "tasks", ["repeated"]),
        ({"tasks": [{"name": "evo_gsm8k_search", "weight": 0}]}, "tasks", ["not all be 0"]),
        ({"bogus": 1}, "bogus", ["Extra inputs are not permitted"]),
    ],
)
def test_spec_field_errors(kwargs: dict, field: str, words: list[str]) -> None:
    kwargs = {"tasks": ["evo_gsm8k_search"], **kwargs}
    with pytest.raises(ValidationError) as info:
        FitnessSpec(**kwargs)
    text = str(info.value)
    assert field in text
    for word in words:
        assert word in text


def test_report_split_needs_the_flag(caplog: pytest.LogCaptureFixture) -> None:
    spec = FitnessSpec(tasks=["evo_gsm8k_search", "evo_mgsm_direct_ja"])
    with pytest.raises(FitnessError) as info:
        spec.check_splits()
    assert "evo_mgsm_direct_ja" in str(info.value)
    assert "allow_report_split" in str(info.value)
    assert "evo_gsm8k_search" not in str(info.value).split("]")[0]
    FitnessSpec(tasks=["evo_gsm8k_search", "evo_mgsm_direct_ja_search"]).check_splits()
    allowed = FitnessSpec(tasks=["evo_mgsm_direct_ja"], allow_report_split=True)
    with caplog.at_level(logging.WARNING):
        allowed.check_splits()
    assert "evo_mgsm_direct_ja" in caplog.text


def test_report_scores_say_nothing_about_the_fitness(caplog: pytest.LogCaptureFixture) -> None:
    """Scoring the report split (the end-of-run report, ``eval``) is no fitness warning."""
    report = FitnessSpec(tasks=["evo_mgsm_direct_ja"], purpose="report")
    with caplog.at_level(logging.WARNING):
        report.check_splits()
    assert caplog.text == ""
    with caplog.at_level(logging.WARNING):
        FitnessSpec(tasks=["evo_mgsm_direct_ja"], allow_report_split=True).check_splits()
    assert "search's fitness" in caplog.text
