"""Word-level tokenizer for the zoo: one token per word, per integer 0..99 and per symbol.

Why word-level: at a few hundred thousand parameters every sub-word merge costs capacity, and the
corpus is closed (``corpus.all_words`` + ``language``), so a fixed vocabulary covers it exactly.
It is a plain ``PreTrainedTokenizerFast`` (``tokenizer.json``), so ``AutoTokenizer`` loads it
offline, as do MergeKit and lm-eval.
"""

from __future__ import annotations

from pathlib import Path

SPECIALS: tuple[str, ...] = ("<pad>", "<unk>", "<s>", "</s>")


def vocabulary() -> list[str]:
    """The full, ordered vocabulary (fixed: identical for every seed and size)."""
    from mergekit_evo.zoo.corpus import all_words
    from mergekit_evo.zoo.language import (
        ENGLISH_WORDS,
        L_WORDS,
        NAMES,
        NEW_GAIN_VERBS,
        NEW_LOSS_VERBS,
    )

    vocab: list[str] = []
    new_verbs = (*NEW_GAIN_VERBS, *NEW_LOSS_VERBS)
    for tok in (*SPECIALS, *all_words(), *NAMES, *ENGLISH_WORDS, *L_WORDS, *new_verbs):
        if tok not in vocab:
            vocab.append(tok)
    return vocab


def word_level_tokenizer(
    words: list[str], pre_tokenizer: object, model_max_length: int, out_dir: str | Path | None
):  # -> PreTrainedTokenizerFast
    """A fast word-level tokenizer over ``words`` (specials first) that decodes with spaces."""
    import transformers
    from tokenizers import Tokenizer, decoders, models

    vocab = {tok: i for i, tok in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece(prefix="@@@", cleanup=False)  # joins with spaces
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


def make_tokenizer(out_dir: str | Path | None = None):  # -> PreTrainedTokenizerFast
    """Build (and, given ``out_dir``, save) the zoo tokenizer."""
    from tokenizers import Regex, pre_tokenizers

    # words are space separated by construction; also split . ? , ! off words typed by hand
    split = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split(Regex(r"[.?,!]"), behavior="isolated"),
        ]
    )
    return word_level_tokenizer(vocabulary(), split, 512, out_dir)
