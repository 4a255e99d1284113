"""Datasets behind the shipped tasks: local files under ``$MERGEKIT_EVO_DATA``, else the hub.

Called by lm-eval through each task's ``custom_dataset`` (with the task's metadata and
``dataset_kwargs`` as keyword arguments). Every loader returns one ``DatasetDict`` that holds the
report split *and* the documented search/held-out subsets, so all tasks of a family read the same
rows and the subsets are disjoint by construction.

Local layout (``$MERGEKIT_EVO_DATA``)::

    gsm8k/train.jsonl, gsm8k/test.jsonl     {"question": ..., "answer": "... #### N"}
    mgsm/mgsm_{lang}.tsv                    question<TAB>answer_number, no header
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from mergekit_evo.fitness.errors import FitnessError

DATA_ENV = "MERGEKIT_EVO_DATA"
#: evo_gsm8k_search: the first 1000 rows of GSM8K train, in file order.
GSM8K_SEARCH_ROWS = range(0, 1000)
#: MGSM rows (0-249, = GSM8K test 0-249) used for search; the rest (100-249) are held out.
MGSM_SEARCH_ROWS = range(0, 100)
MGSM_HELDOUT_ROWS = range(100, 250)
MGSM_SIZE = 250
MGSM_LANGUAGES: tuple[str, ...] = ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")
GSM8K_HUB = ("openai/gsm8k", "main")
MGSM_HUB = "juletxara/mgsm"


def data_dir() -> Path | None:
    """The local data folder named by ``$MERGEKIT_EVO_DATA``; None when unset (use the hub)."""
    value = os.environ.get(DATA_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FitnessError(
            f"{DATA_ENV}={value!r} is not a folder; it must hold gsm8k/{{train,test}}.jsonl "
            f"and mgsm/mgsm_{{lang}}.tsv (or unset it to use the hub datasets)"
        )
    return path.resolve()


def _need_file(path: Path) -> Path:
    if not path.is_file():
        raise FitnessError(
            f"data file {path} is missing (from {DATA_ENV}={os.environ.get(DATA_ENV)!r}); "
            f"present there: {sorted(p.name for p in path.parent.glob('*'))}"
        )
    return path


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with _need_file(path).open(encoding="utf-8") as fh:
        return [
            {"question": row["question"], "answer": row["answer"]}
            for row in map(json.loads, filter(str.strip, fh))
        ]


def _read_mgsm_tsv(path: Path) -> list[dict[str, Any]]:
    rows = []
    with _need_file(path).open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            question, number = line.rstrip("\n").rsplit("\t", 1)
            value = float(number.replace(",", ""))
            rows.append(
                {
                    "question": question,
                    "answer": None,
                    "answer_number": int(value) if value.is_integer() else value,
                    "equation_solution": None,
                }
            )
    return rows


@functools.lru_cache(maxsize=4)
def _gsm8k(root: Path | None) -> Any:
    import datasets

    if root is None:
        hub = datasets.load_dataset(*GSM8K_HUB)
        train, test = hub["train"], hub["test"]
    else:
        train = datasets.Dataset.from_list(_read_jsonl(root / "gsm8k" / "train.jsonl"))
        test = datasets.Dataset.from_list(_read_jsonl(root / "gsm8k" / "test.jsonl"))
    search = list(GSM8K_SEARCH_ROWS)
    rest = [i for i in range(len(train)) if i not in GSM8K_SEARCH_ROWS]
    return datasets.DatasetDict(
        train=train,
        test=test,
        search=train.select(search),
        search_fewshot=train.select(rest),
    )


def gsm8k_dataset(**_: Any) -> Any:
    """GSM8K: ``train``, ``test`` (1319), ``search`` (train 0-999), ``search_fewshot`` (rest)."""
    return _gsm8k(data_dir())


@functools.lru_cache(maxsize=16)
def _mgsm(root: Path | None, lang: str) -> Any:
    import datasets

    if root is None:
        hub = datasets.load_dataset(MGSM_HUB, lang)
        train, test = hub["train"], hub["test"]
    else:
        test = datasets.Dataset.from_list(_read_mgsm_tsv(root / "mgsm" / f"mgsm_{lang}.tsv"))
        # MGSM's translated few-shot exemplars are not among the local files: an empty train
        # split keeps lm-eval's config valid; the evaluator refuses num_fewshot > 0 on it.
        train = test.select([])
    if len(test) != MGSM_SIZE:
        raise FitnessError(f"MGSM {lang} has {len(test)} rows, expected {MGSM_SIZE}")
    return datasets.DatasetDict(
        train=train,
        test=test,
        search=test.select(list(MGSM_SEARCH_ROWS)),
        heldout=test.select(list(MGSM_HELDOUT_ROWS)),
    )


def mgsm_dataset(lang: str, **_: Any) -> Any:
    """MGSM in ``lang``: ``train`` (exemplars), ``test`` (250), ``search`` (0-99), ``heldout``."""
    if lang not in MGSM_LANGUAGES:
        raise FitnessError(f"MGSM language {lang!r} unknown; choose from {MGSM_LANGUAGES}")
    return _mgsm(data_dir(), lang)
