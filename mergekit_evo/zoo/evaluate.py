"""Greedy-decoding accuracy on a zoo split, and a hand task-arithmetic merge, for sanity checks.

Why not lm-eval here: the zoo must be checkable while it is built (and in seconds in tests); the
real fitness goes through lm-eval in ``mergekit_evo.fitness`` using the YAML in ``OUT/tasks``.
The scoring rule matches those tasks: the number after ``####`` (else the last number) must equal
the number after ``####`` in the reference answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from mergekit_evo.zoo.corpus import prompt

_STRICT = re.compile(r"#### (-?\d+)")
_NUMBER = re.compile(r"-?\d+")


def extract_answer(text: str) -> str | None:
    """The number after the first ``####``, else the last number in ``text``."""
    m = _STRICT.search(text)
    if m:
        return m.group(1)
    nums = _NUMBER.findall(text)
    return nums[-1] if nums else None


def load_split(path: str | Path) -> list[dict]:
    """Records of a zoo jsonl split (``question``, ``answer``)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@torch.no_grad()
def generate(
    model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 32, batch_size: int = 100
) -> list[str]:
    """Greedy continuations (left-padded batches, stopping at ``</s>``)."""
    tokenizer.padding_side = "left"
    model.eval()
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        enc = tokenizer(list(prompts[i : i + batch_size]), return_tensors="pt", padding=True)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        gen = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new = gen[:, enc["input_ids"].shape[1] :]
        out.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    return out


def accuracy(
    model,
    tokenizer,
    records: Sequence[Mapping[str, str]],
    prompt_format: str | None = None,
    scoring: str = "number",
    until: Sequence[str] = (),
    samples: list[dict[str, str]] | None = None,
    **kw,
) -> float:
    """Fraction of records answered right: the answer number matches the reference's
    (``scoring="number"``), or the first generated line equals the reference (``"text"``).
    ``prompt_format``: a format string over ``question`` (default ``corpus.prompt``);
    ``until``: the task's stop strings (the generation is cut at the first, as lm-eval does);
    ``samples``: gets the first 3 generations with their gold answers (what a score of 0 was)."""
    prompts = [
        prompt(r["question"]) if prompt_format is None else prompt_format.format(**r)
        for r in records
    ]
    outs = generate(model, tokenizer, prompts, **kw)
    for stop in until:
        outs = [o.split(stop)[0] for o in outs]
    if samples is not None:
        samples += [
            {"output": o, "gold": r["answer"]} for o, r in zip(outs[:3], records, strict=False)
        ]
    if scoring == "text":
        got = [o.strip().split("\n")[0].strip() for o in outs]
        return sum(g == r["answer"].strip() for g, r in zip(got, records, strict=True)) / len(
            records
        )
    gold = [extract_answer(r["answer"]) for r in records]
    return sum(extract_answer(o) == g for o, g in zip(outs, gold, strict=True)) / len(records)


def task_arithmetic(
    base: Mapping[str, torch.Tensor],
    tuned: Sequence[Mapping[str, torch.Tensor]],
    scales: Sequence[float],
) -> dict[str, torch.Tensor]:
    """``base + sum_i scale_i * (tuned_i - base)``, tensor by tensor (float32)."""
    merged = {k: v.float().clone() for k, v in base.items()}
    for sd, s in zip(tuned, scales, strict=True):
        for k in merged:
            merged[k] += s * (sd[k].float() - base[k].float())
    return merged


def task_vector_stats(
    base: Mapping[str, torch.Tensor], a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]
) -> dict[str, float]:
    """Relative norms of the two task vectors and their cosine (the merge-friendliness check)."""
    flat = lambda sd: torch.cat([sd[k].float().flatten() for k in sorted(base)])  # noqa: E731
    w, da, db = flat(base), flat(a) - flat(base), flat(b) - flat(base)
    return {
        "rel_norm_a": float(da.norm() / w.norm()),
        "rel_norm_b": float(db.norm() / w.norm()),
        "cosine": float(torch.dot(da, db) / (da.norm() * db.norm() + 1e-12)),
    }


_LAYER = re.compile(r"\.layers\.(\d+)\.")


def task_vector_parts(
    base: Mapping[str, torch.Tensor],
    a: Mapping[str, torch.Tensor],
    b: Mapping[str, torch.Tensor],
    group: int = 10,
) -> dict[str, dict[str, float]]:
    """Where each task vector sits: per part (the embeddings, each group of ``group``
    transformer layers, the rest: final norm and an untied head), each vector's norm relative
    to the base's part and their cosine there. Two vectors that overlap in a part are where a
    weight merge adds one skill's change on top of the other's (design ``real-base``)."""

    def part(key: str) -> str:
        m = _LAYER.search(key)
        if m:
            lo = int(m.group(1)) // group * group
            return f"layers {lo}-{lo + group - 1}"
        return "embeddings" if "embed_tokens" in key else "other"

    acc: dict[str, list[float]] = {}
    for key in base:
        w = base[key].float()
        da, db = a[key].float() - w, b[key].float() - w
        s = acc.setdefault(part(key), [0.0, 0.0, 0.0, 0.0])
        s[0] += float((w * w).sum())
        s[1] += float((da * da).sum())
        s[2] += float((db * db).sum())
        s[3] += float((da * db).sum())
    out = {}
    for name, (ww, aa, bb, ab) in sorted(acc.items(), key=lambda kv: _part_order(kv[0])):
        out[name] = {
            "rel_norm_a": (aa / ww) ** 0.5 if ww else 0.0,
            "rel_norm_b": (bb / ww) ** 0.5 if ww else 0.0,
            "cosine": ab / ((aa * bb) ** 0.5 + 1e-30),
        }
    return out


def _part_order(name: str) -> tuple[int, int]:
    if name == "embeddings":
        return (0, 0)
    if name.startswith("layers "):
        return (1, int(name.split()[1].split("-")[0]))
    return (2, 0)


def hand_merge_name(sources: Sequence[str]) -> str:
    """Label of the task-arithmetic merge of ``sources`` (e.g. ``base+dMATH+dVERBS``)."""
    return "base" + "".join(f"+d{s.upper()}" for s in sources)


def sanity_table(
    zoo_dir: str | Path,
    max_records: int | None = None,
    device: str = "cpu",
    scales: Sequence[float] = (1.0, 1.0),
) -> dict:
    """Accuracy of base / each source / their task-arithmetic merge on every split, plus
    task-vector stats (``scales``: the merge's weight per source)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    zoo_dir = Path(zoo_dir)
    manifest = json.loads((zoo_dir / "zoo.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(zoo_dir / manifest["tokenizer"]))
    models = {
        name: AutoModelForCausalLM.from_pretrained(str(zoo_dir / m["path"]), dtype=torch.float32)
        for name, m in manifest["models"].items()
    }
    sources = [k for k, m in manifest["models"].items() if m["role"] == "source"]
    sds = {k: m.state_dict() for k, m in models.items()}
    merged = AutoModelForCausalLM.from_pretrained(
        str(zoo_dir / manifest["models"]["base"]["path"]), dtype=torch.float32
    )
    merged.load_state_dict(task_arithmetic(sds["base"], [sds[s] for s in sources], scales))
    label = hand_merge_name(sources)
    if tuple(scales) != (1.0,) * len(sources):
        label += "@" + ",".join(f"{x:g}" for x in scales)
    models[label] = merged
    models = {k: m.to(device) for k, m in models.items()}
    table: dict[str, dict[str, float]] = {}
    samples: dict[str, list[dict[str, str]]] = {}
    max_new = manifest.get("max_gen_toks", 32)
    for split, info in manifest["splits"].items():
        records = load_split(zoo_dir / info["data"])[:max_records]
        scoring = info.get("scoring", "number")
        kw = {"prompt_format": info.get("prompt"), "scoring": scoring,
              "until": info.get("until", ()),
              "max_new_tokens": max_new if scoring == "number" else 64}  # fmt: skip
        table[split] = {}
        for name, m in models.items():
            got: list[dict[str, str]] | None = [] if name == label else None
            table[split][name] = accuracy(m, tok, records, samples=got, **kw)
            if got is not None:
                samples[split] = got
    a, b = sds[sources[0]], sds[sources[1]]
    return {
        "accuracy": table,
        "sources": sources,
        "task_vectors": task_vector_stats(sds["base"], a, b),
        "task_vector_parts": task_vector_parts(sds["base"], a, b),
        "merge_samples": {"model": label, **samples},
    }


def format_table(result: dict) -> str:
    """Markdown table of ``sanity_table`` output (splits as rows, models as columns)."""
    acc = result["accuracy"]
    names = list(next(iter(acc.values())))
    lines = ["| split | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for split, row in acc.items():
        lines.append(f"| {split} | " + " | ".join(f"{100 * row[n]:.1f}" for n in names) + " |")
    tv = result["task_vectors"]
    a, b = (s.upper() for s in result["sources"])
    lines.append(
        f"\n|d{a}|/|base| = {tv['rel_norm_a']:.4f}, |d{b}|/|base| = {tv['rel_norm_b']:.4f}, "
        f"cos(d{a}, d{b}) = {tv['cosine']:.3f}"
    )
    parts = result.get("task_vector_parts")
    if parts:
        head = f"| part | norm d{a} / base | norm d{b} / base | cos |"
        lines += ["", head, "|---|---|---|---|"]
        for name, p in parts.items():
            lines.append(
                f"| {name} | {p['rel_norm_a']:.4f} | {p['rel_norm_b']:.4f} | {p['cosine']:.3f} |"
            )
    if result.get("merge_samples"):
        lines.append("")
    for split, got in (result.get("merge_samples") or {}).items():
        if split == "model":
            continue
        for g in got[:2]:
            lines.append(f"{split} ({result['merge_samples']['model']}): {g['output'].strip()!r}"
                         f"  gold {g['gold'].strip()[-60:]!r}")  # fmt: skip
    return "\n".join(lines)
