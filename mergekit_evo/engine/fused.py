"""A decoder layer as plain-tensor functions over *fused* projections, compiled once.

Eager, one Llama-family layer at batch 64 is ~40 small kernels (the RMS norms alone are six
each, rotary ten), and a CUDA-graph replay of 24 layers still pays each kernel's few
microseconds.  Inductor fuses the element-wise work around the matrix products, and the
projections are fused too: q, k and v are one matrix product, gate and up another.

**Fused weights without copies.**  :func:`fuse_layer` moves a layer's q/k/v weights (and
biases) into one buffer and gate/up into another, then points the modules' parameters at their
rows of it (``param.data = buffer[rows]``).  The values and the modules' own forward are
unchanged, no memory is added, and anything that writes the parameters in place (the resident
builder's merges, batched or MergeKit's tasks) writes the fused matrices too: nothing to
refresh.  Whatever replaces a parameter's storage instead (``module.to()``, ``param.data = x``)
breaks the aliasing; :meth:`LayerTensors.intact` notices and :meth:`FusedLayers.refresh` fuses
that layer again (the decoder then recaptures its CUDA graphs).

The functions take the weights as arguments, never the modules, so Dynamo guards on shapes and
dtypes only: one compilation serves every layer, every candidate written in place and every DFS
path, and the prefill's (dynamic batch and length) fuses the norms, rotary and SiLU over tens of
thousands of tokens.

**One compiled copy per variant.**  Dynamo keeps compiled entries per *code object* and fails a
``fullgraph`` function on its 9th (``config.recompile_limit``).  Dynamic shapes still specialise
sizes 0 and 1, so decode (length 1), prefill, a batch of one (a shared prefix, the last bucket),
each dtype (a float32 check beside bfloat16 candidates) and each layer structure (q/k/v bias,
qwen3's q/k norms) is an entry of its own; one process that decoded several model families
(the benchmark, the GPU tests) ran out of entries (the H200 run of 2026-12-03: ``pre_attention``
hit the limit, "size mismatch at index 1. expected 1, actual 20").  :class:`FusedLayers` therefore
compiles a copy of each function with its own code object per variant (:func:`variant_key`), so
a variant's lengths share one dynamic entry and variants never evict or count against each other.
Numerics follow the Hugging Face modules: the RMS norm in float32, cast back before the weight.
"""

from __future__ import annotations

import types
from collections.abc import Callable
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
    wqkv: torch.Tensor,
    bqkv: torch.Tensor | None,
    qn: torch.Tensor | None,
    kn: torch.Tensor | None,
    cos: torch.Tensor,
    sin: torch.Tensor,
    eps: float,
    head_dim: int,
    n_q: int,
    n_kv: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Norm, the fused q/k/v product (qwen3's q/k norms), rotary: (b, t, heads, head_dim)."""
    b, t = h.shape[0], h.shape[1]
    x = _rms(h, ln, eps)
    qkv = F.linear(x, wqkv, bqkv)
    q, k, v = qkv.split([n_q * head_dim, n_kv * head_dim, n_kv * head_dim], dim=-1)
    q = q.reshape(b, t, n_q, head_dim)
    k = k.reshape(b, t, n_kv, head_dim)
    v = v.reshape(b, t, n_kv, head_dim)
    if qn is not None and kn is not None:
        q, k = _rms(q, qn, eps), _rms(k, kn, eps)
    c, s = cos.unsqueeze(2), sin.unsqueeze(2)
    return q * c + _rotate_half(q) * s, k * c + _rotate_half(k) * s, v


def post_attention(
    h: torch.Tensor,
    o: torch.Tensor,
    wo: torch.Tensor,
    bo: torch.Tensor | None,
    ln: torch.Tensor,
    wgu: torch.Tensor,
    wd: torch.Tensor,
    eps: float,
    inter: int,
) -> torch.Tensor:
    """Output projection, residual, norm, fused gate/up, SiLU, down, residual.

    ``o`` (b, t, heads, head_dim)."""
    b, t = h.shape[0], h.shape[1]
    h = h + F.linear(o.reshape(b, t, -1), wo, bo)
    x = _rms(h, ln, eps)
    gate, up = F.linear(x, wgu).split([inter, inter], dim=-1)
    return h + F.linear(F.silu(gate) * up, wd)


def _fuse_rows(params: list[torch.nn.Parameter], fused: torch.Tensor | None) -> torch.Tensor:
    """``params`` as consecutive rows of one buffer (reused if they already are its rows)."""
    if fused is not None and _rows_of(params, fused):
        return fused
    buf = torch.cat([p.detach() for p in params], dim=0)
    off = 0
    for p in params:
        n = p.shape[0]
        p.data = buf[off : off + n]
        off += n
    return buf


def _rows_of(params: list[torch.Tensor], buf: torch.Tensor) -> bool:
    """Whether ``params`` are, in order, the consecutive rows of ``buf`` (same storage)."""
    if any(p.dtype != buf.dtype or p.device != buf.device for p in params):
        return False
    step = buf.element_size() * (buf[0].numel() if buf.dim() > 1 else 1)
    ptr = buf.data_ptr()
    for p in params:
        if p.data_ptr() != ptr or not p.is_contiguous() or p.shape[1:] != buf.shape[1:]:
            return False
        ptr += p.shape[0] * step
    return ptr == buf.data_ptr() + buf.shape[0] * step


@dataclass(frozen=True)
class LayerTensors:
    """The tensors of one decoder layer; ``wqkv``/``bqkv``/``wgu`` alias the module's params."""

    ln1: torch.Tensor
    wqkv: torch.Tensor
    bqkv: torch.Tensor | None
    qn: torch.Tensor | None
    kn: torch.Tensor | None
    wo: torch.Tensor
    bo: torch.Tensor | None
    ln2: torch.Tensor
    wgu: torch.Tensor
    wd: torch.Tensor
    eps: float
    head_dim: int
    n_q: int
    n_kv: int
    inter: int
    parts: tuple[tuple[tuple[torch.Tensor, ...], torch.Tensor], ...]  # (params, their buffer)

    def intact(self) -> bool:
        """Whether the module's parameters are still the rows of the fused buffers."""
        return all(_rows_of(list(ps), buf) for ps, buf in self.parts)


def _plain_shape(layer: Any) -> bool:
    attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
    if attn is None or mlp is None:
        return False
    act = getattr(mlp, "act_fn", None)
    silu = isinstance(act, torch.nn.SiLU) or type(act).__name__ == "SiLUActivation"
    if not silu or not all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")):
        return False
    if getattr(mlp.gate_proj, "bias", None) is not None or mlp.up_proj.bias is not None:
        return False
    biases = [getattr(attn, n).bias is not None for n in ("q_proj", "k_proj", "v_proj")]
    if any(biases) and not all(biases):
        return False
    return getattr(layer.input_layernorm, "variance_epsilon", None) is not None


@torch.no_grad()
def fuse_layer(layer: Any) -> LayerTensors | None:
    """The layer's :class:`LayerTensors`, fusing its projections in place if they are not
    already (None: not the plain Llama-family shape; the layer is left as it was)."""
    cached = getattr(layer, "_evo_fused", None)
    if isinstance(cached, LayerTensors) and cached.intact():
        return cached
    if not _plain_shape(layer):
        return None
    attn, mlp = layer.self_attn, layer.mlp
    old = cached if isinstance(cached, LayerTensors) else None
    qkv = [attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]
    gu = [mlp.gate_proj.weight, mlp.up_proj.weight]
    wqkv = _fuse_rows(qkv, old.wqkv if old else None)
    wgu = _fuse_rows(gu, old.wgu if old else None)
    parts: list[tuple[tuple[torch.Tensor, ...], torch.Tensor]] = [
        (tuple(qkv), wqkv),
        (tuple(gu), wgu),
    ]
    bqkv = None
    if attn.q_proj.bias is not None:
        bs = [attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]
        bqkv = _fuse_rows(bs, old.bqkv if old else None)
        parts.append((tuple(bs), bqkv))
    qn = getattr(attn, "q_norm", None)
    kn = getattr(attn, "k_norm", None)
    head_dim = int(attn.head_dim)
    tensors = LayerTensors(
        ln1=layer.input_layernorm.weight,
        wqkv=wqkv,
        bqkv=bqkv,
        qn=None if qn is None else qn.weight,
        kn=None if kn is None else kn.weight,
        wo=attn.o_proj.weight,
        bo=attn.o_proj.bias,
        ln2=layer.post_attention_layernorm.weight,
        wgu=wgu,
        wd=mlp.down_proj.weight,
        eps=float(layer.input_layernorm.variance_epsilon),
        head_dim=head_dim,
        n_q=attn.q_proj.out_features // head_dim,
        n_kv=attn.k_proj.out_features // head_dim,
        inter=mlp.gate_proj.out_features,
        parts=tuple(parts),
    )
    layer._evo_fused = tensors
    return tensors


def fuse_model(model: Any) -> int:
    """Fuse every plain decoder layer of a Hugging Face model in place; how many were."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None) or []
    return sum(fuse_layer(layer) is not None for layer in layers)


def variant_key(h: torch.Tensor, w: LayerTensors) -> tuple:
    """What makes Dynamo compile a separate entry: dtype, device, the layer's optional tensors,
    and sizes it specialises (batch 1, length 1: decode).  Every other size stays dynamic."""
    return (
        str(h.dtype).removeprefix("torch."),
        str(h.device),
        w.bqkv is not None,
        w.qn is not None,
        w.bo is not None,
        h.shape[0] == 1,
        h.shape[1] == 1,
    )


def own_code(fn: Callable, tag: str) -> Callable:
    """``fn`` with a code object of its own (named ``fn__tag``): Dynamo's compiled entries and its
    recompile count live on the code object, so each copy has its own."""
    name = f"{fn.__name__}__{tag}"
    code = fn.__code__.replace(co_name=name, co_qualname=name)
    copy = types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    copy.__doc__ = fn.__doc__
    return copy


class FusedLayers:
    """``pre``/``post`` and the fused tensors for every position of a stack."""

    #: shared by every decoder of the process: (function, backend, variant) -> compiled copy
    _compiled: dict[tuple, Callable] = {}

    def __init__(self, layers: list[Any], compile: bool = True, backend: str = "inductor") -> None:
        """``compile``: run the functions through ``torch.compile`` (``backend``; tests on CPU
        may use ``eager``: Dynamo's guards, hence its entries, do not depend on the backend)."""
        tensors = [fuse_layer(layer) for layer in layers]
        if any(t is None for t in tensors):
            raise ValueError("a layer is not of the plain Llama-family shape")
        self.layers = layers
        self.tensors: list[LayerTensors] = tensors  # type: ignore[assignment]
        self.compile = compile
        self.backend = backend

    def _function(self, fn: Callable, h: torch.Tensor, w: LayerTensors) -> Callable:
        if not self.compile:
            return fn
        key = (fn.__name__, self.backend, variant_key(h, w))
        compiled = self._compiled.get(key)
        if compiled is None:
            tag = "_".join(
                str(int(k)) if isinstance(k, bool) else str(k).replace(":", "") for k in key[2]
            )
            compiled = torch.compile(
                own_code(fn, tag), dynamic=True, fullgraph=True, backend=self.backend
            )
            self._compiled[key] = compiled
        return compiled

    def pre(
        self, h: torch.Tensor, w: LayerTensors, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:func:`pre_attention` of layer tensors ``w`` (compiled for ``h``'s variant)."""
        fn = self._function(pre_attention, h, w)
        return fn(h, w.ln1, w.wqkv, w.bqkv, w.qn, w.kn, cos, sin, w.eps, w.head_dim, w.n_q, w.n_kv)

    def post(self, h: torch.Tensor, o: torch.Tensor, w: LayerTensors) -> torch.Tensor:
        """:func:`post_attention` of layer tensors ``w``; ``o`` (b, t, heads, head_dim)."""
        fn = self._function(post_attention, h, w)
        return fn(h, o, w.wo, w.bo, w.ln2, w.wgu, w.wd, w.eps, w.inter)

    def refresh(self) -> bool:
        """Fuse again every layer whose parameters moved; True if any did."""
        changed = False
        for i, layer in enumerate(self.layers):
            if not self.tensors[i].intact():
                fused = fuse_layer(layer)
                if fused is None:
                    raise ValueError("a layer is no longer of the plain Llama-family shape")
                self.tensors[i] = fused
                changed = True
        return changed
