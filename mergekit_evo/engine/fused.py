"""A decode step's layer as two ``torch.compile``d functions of plain tensors.

Eager, one Llama-family layer at batch 64 is ~40 small kernels (the RMS norms alone are six
each, rotary ten), and a CUDA-graph replay of 24 layers still pays each kernel's few
microseconds: 3.9 ms a step against a 0.4 ms memory floor (docs/benchmarks.md).  Inductor fuses
the element-wise work around the matrix products.  The functions take the weights as arguments,
never the modules, so Dynamo guards on shapes and dtypes only: one compilation serves every
layer, every candidate written in place and every DFS path (a layer used twice is the same
code with other tensors), with dynamic batch and cache sizes (retiring rows changes the batch).
The cache write and attention stay outside, eager, so no compiled graph mutates its inputs.

Numerics follow the Hugging Face modules: the RMS norm in float32, cast back before the weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    dtype = x.dtype
    x32 = x.to(torch.float32)
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return w * x32.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def pre_attention(
    h: torch.Tensor,
    ln: torch.Tensor,
    wq: torch.Tensor,
    bq: torch.Tensor | None,
    wk: torch.Tensor,
    bk: torch.Tensor | None,
    wv: torch.Tensor,
    bv: torch.Tensor | None,
    qn: torch.Tensor | None,
    kn: torch.Tensor | None,
    cos: torch.Tensor,
    sin: torch.Tensor,
    eps: float,
    head_dim: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Norm, q/k/v projections (and qwen3's q/k norms), rotary: (b, heads, 1, head_dim) each."""
    b = h.shape[0]
    x = _rms(h, ln, eps)
    q = F.linear(x, wq, bq).view(b, 1, -1, head_dim)
    k = F.linear(x, wk, bk).view(b, 1, -1, head_dim)
    v = F.linear(x, wv, bv).view(b, 1, -1, head_dim)
    if qn is not None and kn is not None:
        q, k = _rms(q, qn, eps), _rms(k, kn, eps)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    c, s = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * c + _rotate_half(q) * s, k * c + _rotate_half(k) * s, v


def post_attention(
    h: torch.Tensor,
    o: torch.Tensor,
    wo: torch.Tensor,
    bo: torch.Tensor | None,
    ln: torch.Tensor,
    wg: torch.Tensor,
    wu: torch.Tensor,
    wd: torch.Tensor,
    eps: float,
) -> torch.Tensor:
    """Output projection, residual, norm, gated SiLU MLP, residual."""
    b = h.shape[0]
    h = h + F.linear(o.transpose(1, 2).reshape(b, 1, -1), wo, bo)
    x = _rms(h, ln, eps)
    return h + F.linear(F.silu(F.linear(x, wg)) * F.linear(x, wu), wd)


@dataclass(frozen=True)
class LayerTensors:
    """The tensors of one decoder layer (views of its parameters: in-place merges show)."""

    ln1: torch.Tensor
    wq: torch.Tensor
    bq: torch.Tensor | None
    wk: torch.Tensor
    bk: torch.Tensor | None
    wv: torch.Tensor
    bv: torch.Tensor | None
    qn: torch.Tensor | None
    kn: torch.Tensor | None
    wo: torch.Tensor
    bo: torch.Tensor | None
    ln2: torch.Tensor
    wg: torch.Tensor
    wu: torch.Tensor
    wd: torch.Tensor
    eps: float
    head_dim: int

    @classmethod
    def of(cls, layer: Any) -> LayerTensors | None:
        """The layer's tensors, or None if it is not the plain Llama-family shape."""
        attn, mlp = layer.self_attn, layer.mlp
        act = getattr(mlp, "act_fn", None)
        silu = isinstance(act, torch.nn.SiLU) or type(act).__name__ == "SiLUActivation"
        if not silu or not all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")):
            return None
        if getattr(mlp.gate_proj, "bias", None) is not None:
            return None
        eps = getattr(layer.input_layernorm, "variance_epsilon", None)
        if eps is None:
            return None
        qn = getattr(attn, "q_norm", None)
        kn = getattr(attn, "k_norm", None)
        return cls(
            ln1=layer.input_layernorm.weight,
            wq=attn.q_proj.weight,
            bq=attn.q_proj.bias,
            wk=attn.k_proj.weight,
            bk=attn.k_proj.bias,
            wv=attn.v_proj.weight,
            bv=attn.v_proj.bias,
            qn=None if qn is None else qn.weight,
            kn=None if kn is None else kn.weight,
            wo=attn.o_proj.weight,
            bo=attn.o_proj.bias,
            ln2=layer.post_attention_layernorm.weight,
            wg=mlp.gate_proj.weight,
            wu=mlp.up_proj.weight,
            wd=mlp.down_proj.weight,
            eps=float(eps),
            head_dim=int(attn.head_dim),
        )


class FusedLayers:
    """``pre``/``post`` for every position of a stack, compiled once per process."""

    _compiled: dict[str, Any] = {}  # shared: one compilation however many decoders

    def __init__(self, layers: list[Any], compile: bool = True) -> None:
        tensors = [LayerTensors.of(layer) for layer in layers]
        if any(t is None for t in tensors):
            raise ValueError("a layer is not of the plain Llama-family shape")
        self.tensors: list[LayerTensors] = tensors  # type: ignore[assignment]
        if compile:
            if not self._compiled:
                opts = {"dynamic": True, "fullgraph": True}
                self._compiled["pre"] = torch.compile(pre_attention, **opts)
                self._compiled["post"] = torch.compile(post_attention, **opts)
            self.pre, self.post = self._compiled["pre"], self._compiled["post"]
        else:
            self.pre, self.post = pre_attention, post_attention
