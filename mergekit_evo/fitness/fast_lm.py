"""``mergekit_evo``: lm-eval's ``hf`` model with the engine's greedy decoder behind generation.

Only ``_model_generate`` changes.  Everything else is lm-eval's own ``HFLM``: request sorting
and batching, tokenisation and left truncation, ``until`` stop strings plus the EOS string,
``max_gen_toks``, decoding and stop-string post-processing, loglikelihood scoring, the cache
hook.  So a task scores the same through either model, and prompts, filters and metrics stay
lm-eval's.  Sampling requests, and models the engine cannot run (not Llama-family, a sliding
window shorter than the sequence), go to ``HFLM``'s own ``generate``.

Usable as ``lm_eval --model mergekit_evo --model_args pretrained=DIR,dtype=bfloat16 ...`` once
this package is installed (its import hook registers the name when lm-eval loads its models).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from mergekit_evo.engine import DecoderCache, UnsupportedModel

log = logging.getLogger(__name__)

#: lm-eval model name of :class:`EngineLM`
MODEL_NAME = "mergekit_evo"


@register_model(MODEL_NAME)
class EngineLM(HFLM):
    """``HFLM`` whose greedy generation runs on :class:`mergekit_evo.engine.GreedyDecoder`."""

    def __init__(
        self,
        pretrained: Any,
        *,
        decoders: DecoderCache | None = None,
        encodings: dict[Any, Any] | None = None,
        check_every: int = 8,
        use_graphs: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """``decoders`` and ``encodings`` outlive one model: a search passes the same ones to
        every candidate, so CUDA graphs, the KV cache and the prompts' token ids are reused."""
        super().__init__(pretrained=pretrained, **kwargs)
        self.decoders = decoders or DecoderCache(use_graphs=use_graphs, check_every=check_every)
        self._encodings: dict[Any, Any] = {} if encodings is None else encodings
        self.engine_batches = 0  # batches the engine generated (the rest went to HF)

    # Every candidate of a search sees the same prompts, batched the same way: their token ids
    # are computed once (keyed by every argument, so the result is HFLM's own, just cached).
    def tok_encode(self, string: str, *args: Any, **kwargs: Any) -> list[int]:
        key = ("tok_encode", string, args, tuple(sorted(kwargs.items())))
        ids = self._encodings.get(key)
        if ids is None:
            ids = self._encodings[key] = super().tok_encode(string, *args, **kwargs)
        return list(ids)

    def tok_batch_encode(self, strings: list[str], *args: Any, **kwargs: Any):
        key = ("tok_batch_encode", tuple(strings), args, tuple(sorted(kwargs.items())))
        hit = self._encodings.get(key)
        if hit is None:
            hit = self._encodings[key] = super().tok_batch_encode(strings, *args, **kwargs)
        return hit[0].clone(), hit[1].clone()

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        gen_cfg = getattr(self.model, "generation_config", None)
        eos = getattr(gen_cfg, "eos_token_id", None)
        for value in eos if isinstance(eos, (list, tuple)) else [eos]:
            if value is not None:
                ids.add(int(value))
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return ids

    def _model_generate(
        self, context: torch.Tensor, max_length: int, stop: list[str], **generation_kwargs: Any
    ) -> torch.Tensor:
        attention_mask = generation_kwargs.get("attention_mask")
        greedy = not generation_kwargs.get("do_sample") and not generation_kwargs.get("temperature")
        batch = context.shape[0]
        decoder = self.decoders.decoder_for(self.model, max(batch, int(self.batch_size)))
        if not greedy or decoder is None:
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        if attention_mask is None:
            attention_mask = torch.ones_like(context)
        rows = [
            context[i][attention_mask[i].bool()].tolist() for i in range(batch)
        ]  # left padding removed: the engine keeps each row at positions 0 .. len - 1
        max_new = max_length - context.shape[1]
        eos = self._eos_ids()
        stops = [s for s in stop if s]
        # a stop string of c characters spans at most 4c byte-level tokens
        tail = decoder.check_every + 4 * max((len(s) for s in stops), default=0) + 2

        def is_done(_row: int, toks: list[int]) -> bool:
            if eos.intersection(toks[-decoder.check_every - 1 :]):
                return True
            text = self.tokenizer.decode(toks[-tail:], skip_special_tokens=False)
            return any(s in text for s in stops)

        try:
            tokens = decoder.generate(rows, max_new, is_done)
        except UnsupportedModel as err:
            log.info("engine cannot generate here (%s): using HF generate", err)
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        self.engine_batches += 1
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        width = max((len(t) for t in tokens), default=0)
        out = torch.full((batch, context.shape[1] + width), pad, dtype=context.dtype)
        out[:, : context.shape[1]] = context.cpu()
        for i, toks in enumerate(tokens):
            cut = next((j + 1 for j, t in enumerate(toks) if t in eos), len(toks))
            out[i, context.shape[1] : context.shape[1] + cut] = torch.tensor(toks[:cut])
        return out
