"""The planted fitness as an lm-eval task: log-likelihood of text sampled from the target.

Why samples and not greedy continuations: a sharper model than the target can give the target's
greedy text *more* probability, so greedy text does not single out the target.  For text drawn
from the target p at temperature 1, the mean per-token log-likelihood under a candidate q is an
unbiased estimate of -H(p) - KL(p || q), maximised exactly at q = p (Gibbs' inequality); with a
few thousand tokens the empirical maximiser sits next to the planted recipe (measured in
``docs/planted.md``).  The texts are sampled from the *full* next-token distribution (no top-k,
no banned tokens), since any truncation would move the optimum away from p.

The task is ``loglikelihood_rolling`` over the sampled texts (each text is one window, scored
from the BOS prefix it was sampled from) with one metric, ``loglik_per_token`` (higher is better,
so the project's fitness accepts it: lm-eval's own rolling metrics are perplexities, lower is
better).  Files: ``tasks/<name>.yaml``, ``tasks/planted_data.py`` (loader + process_results) and
``data/<name>.jsonl``; lm-eval resolves ``!function`` modules next to the YAML, so the folder works
from any directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRIC = "loglik_per_token"

_MODULE = '''"""lm-eval hooks of a planted task (written by mergekit_evo.planted.task)."""

import json
from pathlib import Path

import datasets


def load(data_file: str, **_: object) -> datasets.DatasetDict:
    """The sampled texts, from ../data/<data_file> next to this file."""
    path = Path(__file__).resolve().parent.parent / "data" / data_file
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def process_results(doc: dict, results: list) -> dict:
    """Per-token log-likelihood of one text (every text has n_tokens tokens, so the mean over
    texts is the per-token mean over the corpus)."""
    (loglik,) = results
    return {"loglik_per_token": float(loglik) / float(doc["n_tokens"])}
'''

_YAML = """# Written by mergekit_evo.planted.task: {description}
task: {task}
custom_dataset: !function planted_data.load
dataset_kwargs:
  data_file: {data_file}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
process_results: !function planted_data.process_results
metric_list:
  - metric: {metric}
    aggregation: mean
    higher_is_better: true
num_fewshot: 0
metadata:
  version: 1.0
"""


def sample_texts(
    model: Any, tokenizer: Any, n_texts: int, n_tokens: int, seed: int
) -> list[list[int]]:
    """``n_texts`` token sequences of length ``n_tokens`` sampled at temperature 1 after BOS.

    Plain ancestral sampling from the full softmax (no ``generate``: its defaults may add
    top-k / repetition penalties, which would bias the estimate).
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    ids = torch.full((n_texts, 1), tokenizer.bos_token_id, dtype=torch.long)
    model.eval()
    with torch.no_grad():
        for _ in range(n_tokens):
            logits = model(ids).logits[:, -1, :].double()
            probs = torch.softmax(logits, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=gen)
            ids = torch.cat([ids, nxt], dim=1)
    return [row[1:].tolist() for row in ids]


def texts_from_ids(tokenizer: Any, seqs: list[list[int]]) -> list[str]:
    """Decode, checking that lm-eval's re-tokenisation gives back exactly the sampled ids."""
    out = []
    for seq in seqs:
        text = tokenizer.decode(seq, skip_special_tokens=False)
        back = tokenizer.encode(text, add_special_tokens=False)
        if back != seq:
            raise ValueError(f"sampled text does not round-trip through the tokenizer: {text!r}")
        out.append(text)
    return out


def write_task(root: Path, task: str, texts: list[str], n_tokens: int, description: str) -> Path:
    """Write ``root/data/<task>.jsonl`` and ``root/tasks/<task>.yaml``; return the tasks folder."""
    data_dir, tasks_dir = root / "data", root / "tasks"
    data_dir.mkdir(parents=True, exist_ok=True)
    tasks_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / f"{task}.jsonl", "w", encoding="utf-8") as f:
        for text in texts:
            f.write(json.dumps({"text": text, "n_tokens": n_tokens}) + "\n")
    (tasks_dir / "planted_data.py").write_text(_MODULE, encoding="utf-8")
    yaml_text = _YAML.format(
        task=task, data_file=f"{task}.jsonl", metric=METRIC, description=description
    )
    (tasks_dir / f"{task}.yaml").write_text(yaml_text, encoding="utf-8")
    return tasks_dir


def direct_loglik_per_token(model: Any, tokenizer: Any, texts: list[str]) -> float:
    """The same number as the lm-eval task, computed with plain torch (a cross-check)."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = [tokenizer.bos_token_id, *tokenizer.encode(text, add_special_tokens=False)]
            x = torch.tensor([ids])
            lp = torch.log_softmax(model(x).logits[0, :-1].double(), dim=-1)
            total += float(lp.gather(-1, x[0, 1:, None]).sum())
            count += len(ids) - 1
    return total / count
