"""Folding the DFS scaling matrix W into weights, per architecture.

For pre-norm blocks (a norm before each sublayer, none after it), multiplying the residual
stream by ``s > 0`` before a block is the same as scaling that block's and every later
block's sublayer *outputs* by ``1/s``: the norms remove the scale from the sublayer inputs
(exactly, up to the norms' eps), and the final norm removes it before the head.  So only the
residual-writing projections (attention output and MLP down projection) change.
Architectures with norms *after* a sublayer (Gemma 2/3's post-attention norms, post-LN models)
need another rule; they are refused by name rather than folded wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass

from mergekit_evo.methods.errors import RecipeError


@dataclass(frozen=True)
class FoldingRule:
    """Substrings (MergeKit parameter filters) naming the tensors that write the residual."""

    residual_writers: tuple[str, ...]


_PRE_NORM_LLAMA_LIKE = FoldingRule(residual_writers=("o_proj", "down_proj"))

# model_type -> rule; each entry is covered by the routed-reference exactness tests.
FOLDING_RULES: dict[str, FoldingRule] = {
    "llama": _PRE_NORM_LLAMA_LIKE,
    "mistral": _PRE_NORM_LLAMA_LIKE,
    "qwen2": _PRE_NORM_LLAMA_LIKE,
    "qwen3": _PRE_NORM_LLAMA_LIKE,
}

_WHY_NOT = {
    "gemma2": "post-sublayer norms (post_attention_layernorm on the attention output)",
    "gemma3": "post-sublayer norms (post_attention_layernorm on the attention output)",
    "gemma3_text": "post-sublayer norms (post_attention_layernorm on the attention output)",
    "olmo2": "post-sublayer norms",
    "bert": "post-LN blocks",
}


def folding_rule(model_type: str, field: str = "models[0]") -> FoldingRule:
    """The rule for ``model_type``, or a RecipeError that names the architecture."""
    rule = FOLDING_RULES.get(model_type)
    if rule is not None:
        return rule
    reason = _WHY_NOT.get(model_type, "no verified folding rule for its block layout")
    raise RecipeError(
        f"{field}.model_type",
        model_type,
        f"one of {sorted(FOLDING_RULES)} (dfs cannot fold W into {model_type!r}: {reason})",
    )
