"""Source models for a planted problem: a tiny Llama base and fine-tunes = base + task vectors.

Why random task vectors: the planted optimum must be unique and the landscape informative.
Independent Gaussian directions in a few thousand dimensions are nearly orthogonal, so each
merge coefficient moves the model along its own direction; scaling each to a fixed fraction of
the base tensor's norm (``rel_norm``) makes every coefficient matter about equally.  Norm
weights are left shared (they are 1-D gains; perturbing them adds nothing to the test).

The base is initialised with a large ``initializer_range`` so its next-token distributions are
peaked (a default 0.02 init gives near-uniform outputs, hence a flat, uninformative fitness).
"""

from __future__ import annotations

from pathlib import Path

#: word vocabulary: letters only, so decode(encode(text)) round-trips exactly (see task.py)
SPECIALS: tuple[str, ...] = ("<pad>", "<unk>", "<s>", "</s>")


def vocabulary(n_words: int) -> list[str]:
    """Specials plus ``n_words`` distinct two/three-letter words (deterministic)."""
    import itertools
    import string

    words: list[str] = []
    for k in (2, 3):
        for combo in itertools.product(string.ascii_lowercase, repeat=k):
            words.append("".join(combo))
            if len(words) == n_words:
                return [*SPECIALS, *words]
    raise ValueError(f"n_words={n_words} is too many")


def make_tokenizer(n_words: int, out_dir: str | Path | None = None):  # -> PreTrainedTokenizerFast
    """A word-level tokenizer (whitespace split; decoding joins with single spaces)."""
    from tokenizers import pre_tokenizers

    from mergekit_evo.zoo.tokenizer import word_level_tokenizer

    return word_level_tokenizer(vocabulary(n_words), pre_tokenizers.WhitespaceSplit(), 256, out_dir)


def make_base(
    out_dir: str | Path,
    *,
    n_words: int = 60,
    num_layers: int = 4,
    hidden: int = 32,
    init_range: float = 0.3,
    seed: int = 0,
):  # -> PreTrainedModel
    """Random tiny Llama (float32, safetensors) with its tokenizer, saved to ``out_dir``."""
    import torch
    import transformers

    cfg = transformers.LlamaConfig(
        vocab_size=len(SPECIALS) + n_words,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=init_range,
        tie_word_embeddings=False,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(cfg).to(torch.float32)
    model.save_pretrained(str(out_dir))
    make_tokenizer(n_words, out_dir)
    return model


def add_task_vector(
    base_dir: str | Path, out_dir: str | Path, *, rel_norm: float, seed: int
) -> dict[str, float]:
    """Save base + tau, tau a random direction per 2-D tensor with |tau| = rel_norm * |W|.

    Returns the relative norm actually applied per tensor (for the record).
    """
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    applied: dict[str, float] = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() < 2:
                continue
            tau = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            tau *= rel_norm * p.norm() / tau.norm()
            p.add_(tau)
            applied[name] = float(tau.norm() / (p - tau).norm())
    model.save_pretrained(str(out_dir))
    transformers.AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(str(out_dir))
    return applied
