"""Tiny causal LMs and a word-level tokenizer, built locally (never a hub download)."""

from __future__ import annotations

import string
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

_WORDS = (
    "the a an and of to in is was he she they it has had have how many much more fewer "
    "than each every total left after if then what answer question are were for with "
    "apples eggs dollars books cookies marbles buys sells gives gets makes day days week "
    "per times half twice"
).split()


def make_tokenizer(out_dir: str | Path) -> transformers.PreTrainedTokenizerFast:
    """A word-level tokenizer: digits split one by one, so any number is encodable."""
    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    symbols = list(string.digits) + list(string.punctuation) + ["Q", "A", ":", "####"]
    vocab: dict[str, int] = {}
    for tok in specials + symbols + _WORDS:
        vocab.setdefault(tok, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Punctuation(),
        ]
    )
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece(prefix="##")  # joins with spaces
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )
    fast.save_pretrained(str(out_dir))
    return fast


_CONFIGS = {
    "llama": transformers.LlamaConfig,
    "mistral": transformers.MistralConfig,
    "qwen2": transformers.Qwen2Config,
    "qwen3": transformers.Qwen3Config,
    "gemma2": transformers.Gemma2Config,
}


def make_model(
    out_dir: str | Path,
    arch: str = "llama",
    num_layers: int = 4,
    hidden: int = 32,
    seed: int = 0,
    vocab_size: int = 160,
    tokenizer: bool = True,
    **overrides,
) -> transformers.PreTrainedModel:
    """Random-init tiny model saved as a standard HF checkpoint (float32, safetensors)."""
    cfg = _CONFIGS[arch](
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        **overrides,
    )
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    with torch.no_grad():  # default init leaves norms at 1 and biases at 0: perturb them
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(str(out_dir))
    if tokenizer:
        make_tokenizer(out_dir)
    return model
