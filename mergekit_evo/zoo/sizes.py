"""Model and training presets: ``tiny`` (tests, seconds), ``cpu`` (committed fixture), ``gpu``.

Why presets rather than flags: a zoo is only meaningful as a whole (model width, data budget and
fine-tune strength are tuned together so that task vectors stay small and nearly orthogonal), and
``zoo.json`` records the preset by name and value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ZooSize:
    """Everything that differs between zoo sizes."""

    name: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    seq_len: int  # packed pretraining sequence length
    base_steps: int
    base_batch: int
    base_lr: float
    base_tokens: int  # distinct pretraining tokens generated (cycled through)
    ft_steps: int
    ft_batch: int
    ft_lr: float
    ft_examples: int  # distinct fine-tuning examples per source
    search_n: int  # target problems used as search fitness
    heldout_n: int  # target problems reserved for the report
    skill_n: int  # per-source-skill evaluation problems
    warmup_frac: float = 0.05
    problem_mix: float = 0.0  # base-mixture weight of code-switched word problems
    problem_switch_rate: float = 0.2  # their maximum per-word L rate
    # search questions after the build's extension (zoo/extend.py); 0: only the search_n drawn
    # with the held-out split. Fitness slices and a confirm slice need several hundred.
    search_total: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


SIZES: dict[str, ZooSize] = {
    "tiny": ZooSize(
        name="tiny", hidden=32, layers=8, heads=4, intermediate=64, seq_len=64,
        base_steps=12, base_batch=8, base_lr=3e-3, base_tokens=12 * 8 * 64,
        ft_steps=4, ft_batch=8, ft_lr=1e-3, ft_examples=64,
        search_n=16, heldout_n=16, skill_n=16,
    ),
    "cpu": ZooSize(
        name="cpu", hidden=64, layers=8, heads=4, intermediate=192, seq_len=128,
        base_steps=900, base_batch=32, base_lr=3e-3, base_tokens=2_000_000,
        ft_steps=600, ft_batch=32, ft_lr=1e-3, ft_examples=8000,
        search_n=200, heldout_n=400, skill_n=200, search_total=1000,
    ),
    "gpu": ZooSize(
        name="gpu", hidden=384, layers=8, heads=6, intermediate=1024, seq_len=256,
        base_steps=1800, base_batch=128, base_lr=1.5e-3, base_tokens=24_000_000,
        ft_steps=400, ft_batch=64, ft_lr=1e-4, ft_examples=25600,
        search_n=400, heldout_n=400, skill_n=400, search_total=1000,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class RealSize:
    """Fine-tune and split sizes of design ``real-base`` (the model is the real base's).

    ``*_frozen``: ``train.FREEZABLE`` parts or ``layers:A-B`` kept at the base's values; with
    the base's tied embeddings, "embeddings" and "head" are one tensor. Sources are saved in
    ``save_dtype`` (float32 keeps each task vector exact: in bf16 most of a small fine-tune's
    updates round away; the base itself is bf16, as dequantised)."""

    name: str
    ft_batch: int
    math_steps: int
    math_lr: float
    math_examples: int
    lang_steps: int
    lang_lr: float
    lang_examples: int
    search_n: int
    heldout_n: int
    skill_n: int
    math_frozen: tuple[str, ...] = ("embeddings", "head")
    lang_frozen: tuple[str, ...] = ()
    lang_body_lr_scale: float = 1.0
    weight_decay: float = 0.0
    warmup_frac: float = 0.05
    min_events: int = 2
    max_events: int = 3
    max_gen_toks: int = 48  # a 3-event worked answer is about 40 tokens of the base's tokenizer
    save_dtype: str = "float32"

    def to_dict(self) -> dict:
        return asdict(self)


REAL_SIZES: dict[str, RealSize] = {
    # CI and tests on CPU: two steps on the top two layers only (a step of the whole 135M model
    # takes 10-60 s on two busy cores, most of it AdamW's update), a handful of questions
    "tiny": RealSize(
        name="tiny", ft_batch=2, math_steps=2, math_lr=1e-4, math_examples=16,
        lang_steps=2, lang_lr=2e-4, lang_examples=16, search_n=8, heldout_n=8, skill_n=4,
        math_frozen=("embeddings", "head", "layers:0-27"),
        lang_frozen=("embeddings", "head", "layers:0-27"), save_dtype="bfloat16",
    ),
    # the H200 zoo: each fine-tune well under a minute; target_search large enough for
    # fitness slices plus a confirmation slice. LANG is trained in its embeddings (= head) and
    # layers 0-9 only: trained in all its weights (8x MATH's vector) its upper layers overrode
    # MATH's in every merge (equal-weight merge: MATH's skill 100% -> 5%); confined, the merge
    # composes (task arithmetic up to 28% on the target vs 6% for any source; docs/zoo-design.md)
    "gpu": RealSize(
        name="gpu", ft_batch=32, math_steps=300, math_lr=1e-4, math_examples=8000,
        lang_steps=400, lang_lr=2e-4, lang_examples=12000, search_n=1000, heldout_n=400,
        skill_n=200, lang_frozen=("layers:10-29",),
    ),
}  # fmt: skip
