"""Fitness fixtures: real GSM8K/MGSM files (via MERGEKIT_EVO_DATA), offline hub, scripted LMs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parents[1]
os.environ.setdefault(
    "MERGEKIT_EVO_DATA", str((_TESTS.parent.parent / "shared" / "data").resolve())
)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(os.environ["MERGEKIT_EVO_DATA"])


def gold_table() -> dict[str, str]:
    """Question text -> gold response, for every GSM8K and MGSM row in the data folder."""
    table: dict[str, str] = {}
    for split in ("train", "test"):
        with (DATA / "gsm8k" / f"{split}.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                table.setdefault(row["question"], row["answer"])  # solution ending "#### N"
    for path in sorted((DATA / "mgsm").glob("mgsm_*.tsv")):
        for line in path.read_text(encoding="utf-8").splitlines():
            question, number = line.rsplit("\t", 1)
            table.setdefault(question, number)  # MGSM en = GSM8K test 0-249: same gold
    return table


class ScriptedLM:
    """Factory for lm-eval LMs that see only the prompt, find its question, and answer by rule.

    ``rule(question, gold) -> response``: the oracle returns ``gold``; a wrong model something
    else. The question is the known question that occurs last in the prompt (few-shot exemplars
    come before it).
    """

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    def question_of(self, context: str) -> str:
        best, pos = None, -1
        for q in self.table:
            at = context.rfind(q)
            if at > pos or (at == pos and best is not None and len(q) > len(best)):
                best, pos = q, at
        if best is None:
            raise AssertionError(f"no known question in prompt: {context[-200:]!r}")
        return best

    def make(self, rule: Callable[[str, str], str]):
        from lm_eval.api.model import LM

        outer = self

        class _LM(LM):
            def generate_until(self, requests, disable_tqdm: bool = False):
                out = []
                for req in requests:
                    q = outer.question_of(req.args[0])
                    out.append(rule(q, outer.table[q]))
                return out

            def loglikelihood(self, requests, disable_tqdm: bool = False):
                out = []
                for req in requests:
                    context, continuation = req.args
                    q = outer.question_of(context)
                    gold = outer.table[q].split("####")[-1].strip()
                    said = rule(q, gold).split("####")[-1].strip()
                    good = continuation.strip() == said
                    out.append((0.0 if good else -10.0, good))
                return out

            def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
                raise NotImplementedError

        return _LM()


@pytest.fixture(scope="session")
def scripted() -> ScriptedLM:
    return ScriptedLM(gold_table())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama + word-level tokenizer on disk (tests/tiny_models.py)."""
    import sys

    sys.path.insert(0, str(_TESTS))
    from tiny_models import make_model

    out = tmp_path_factory.mktemp("tiny_llama")
    make_model(out)
    return out
