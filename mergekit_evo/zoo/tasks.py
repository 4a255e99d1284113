"""Zoo splits as GSM8K-style jsonl and lm-eval task YAML (``generate_until``, ``exact_match``).

Why a ``custom_dataset`` loader instead of ``dataset_path: json``: ``datasets`` resolves relative
``data_files`` against the working directory, not the YAML, so a committed zoo would only work from
one directory. lm-eval resolves ``!function`` modules next to the YAML, and that module finds the
jsonl next to itself, so ``TaskManager(include_path=ZOO/tasks)`` works from any checkout.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from mergekit_evo.zoo.corpus import Problem, answer_text

TASKS_DIR = "tasks"
DATA_DIR = "data"

_LOADER = '''"""lm-eval loader for the zoo splits: reads ../data/<split_file> next to this file."""

import json
from pathlib import Path

import datasets


def load(split_file: str, **_: object) -> datasets.DatasetDict:
    path = Path(__file__).resolve().parent.parent / "data" / split_file
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
'''

_YAML = """# Written by `mergekit-evo zoo build`: {description}
task: {task}
tag:
  - zoo
custom_dataset: !function zoo_data.load
dataset_kwargs:
  split_file: {data_file}
test_split: test
output_type: generate_until
doc_to_text: "{doc_to_text}"
doc_to_target: "{{{{answer}}}}"
target_delimiter: " "
num_fewshot: 0
generation_kwargs:
  until:
{until}
  do_sample: false
  max_gen_toks: {max_gen_toks}
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "#### (\\\\-?[0-9]+)"
      - function: take_first
  - name: flexible-extract
    filter:
      - function: regex
        group_select: -1
        regex_pattern: "(-?[0-9]+)"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: false
    regexes_to_ignore:
      - "(?s).*#### "
      - "\\\\.$"
metadata:
  version: 1.0
"""

# a split whose answer is text (design real-base: L' -> English translation): the whole
# generation, leading and trailing spaces ignored, must equal the reference
_TEXT_YAML = """# Written by `mergekit-evo zoo build`: {description}
task: {task}
tag:
  - zoo
custom_dataset: !function zoo_data.load
dataset_kwargs:
  split_file: {data_file}
test_split: test
output_type: generate_until
doc_to_text: "{doc_to_text}"
doc_to_target: "{{{{answer}}}}"
target_delimiter: " "
num_fewshot: 0
generation_kwargs:
  until:
{until}
  do_sample: false
  max_gen_toks: {max_gen_toks}
filter_list:
  - name: strip
    filter:
      - function: remove_whitespace
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: false
    ignore_punctuation: false
    regexes_to_ignore:
      - "\\\\s+$"
metadata:
  version: 1.0
"""

#: prompt of the zoo's word problems (lm-eval's ``doc_to_text``; ``corpus.prompt`` in Python)
QA_PROMPT = "Q: {{question}} A:"


def write_jsonl(path: Path, questions: Iterable[str], problems: Iterable[Problem]) -> int:
    """One ``{"question", "answer"}`` object per line; the answer ends in ``#### N``."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for q, p in zip(questions, problems, strict=True):
            f.write(json.dumps({"question": q, "answer": answer_text(p)}, ensure_ascii=False))
            f.write("\n")
            n += 1
    return n


def write_task(
    zoo_dir: Path,
    task: str,
    data_file: str,
    description: str,
    *,
    prompt: str = QA_PROMPT,
    until: Sequence[str] = ("Q:", "</s>"),
    max_gen_toks: int = 32,
    scoring: str = "number",
) -> Path:
    """The YAML for ``task`` (data in ``ZOO/data/<data_file>``), plus the shared loader module.

    ``prompt`` is lm-eval's ``doc_to_text`` (Jinja, ``{{question}}``; a newline as ``\\n``);
    ``scoring``: ``number`` (GSM8K's filters: the number after ``####``, else the last one) or
    ``text`` (the whole answer)."""
    if scoring not in ("number", "text"):
        raise ValueError(f"scoring: {scoring!r}; valid: 'number', 'text'")
    tasks_dir = zoo_dir / TASKS_DIR
    tasks_dir.mkdir(parents=True, exist_ok=True)
    (tasks_dir / "zoo_data.py").write_text(_LOADER, encoding="utf-8")
    path = tasks_dir / f"{task}.yaml"
    template = _YAML if scoring == "number" else _TEXT_YAML
    text = template.format(
        task=task,
        data_file=data_file,
        description=description,
        doc_to_text=prompt,
        until="\n".join(f"    - {json.dumps(u)}" for u in until),
        max_gen_toks=max_gen_toks,
    )
    path.write_text(text, encoding="utf-8")
    return path
