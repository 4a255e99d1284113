"""Decode attention that reads only each row's filled cache slots (split-KV, grouped-query).

Why a kernel of our own: the masked SDPA a decode step used read every slot of the cache bucket
(1,536 at 0.37B) for every row, in one pass per (row, KV head), and the cache write was two
more launches per layer.  FlashAttention and FlashInfer do this, but neither fits the GPU
machine: ``flash-attn`` publishes no wheel on PyPI (source only), ``flash-attn-3`` only a
0.0.0 placeholder, ``flashinfer-python`` is a 101 MB JIT package (CUTLASS DSL and more beside
it) and ``flashinfer-cubin`` 458 MB, against 64 MiB for everything a device call carries.
Triton is on that machine (3.6, with torch 2.11), so this is a Triton flash-decoding kernel:

- grid (row, KV head, split of ``SPLIT`` slots); each program handles the query heads of one
  KV group together (one ``tl.dot`` per key block), loops only over slots below
  ``pos[row] + 1`` read from the device, so a CUDA graph captured once serves every step;
- the program whose split holds ``pos`` also writes the new key and value into the cache (and
  uses them for that slot), so a layer's cache write is no separate launch;
- a second small kernel combines the splits (log-sum-exp).

Every decoder checks it once against SDPA on its own shapes (:func:`usable`) and falls back to
SDPA if Triton is missing, fails or disagrees.  ``TRITON_INTERPRET=1`` runs it on the CPU (tests).
"""

from __future__ import annotations

import logging
import math
import os

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

try:  # Triton ships with CUDA builds of torch; CPU machines run it only in its interpreter
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None
    tl = None

SPLIT = 256  # cache slots per program
BLOCK_N = 64  # keys per inner step


def available(device: torch.device) -> bool:
    """Whether the kernel can run on ``device`` (CUDA with Triton, or Triton's interpreter)."""
    if triton is None:
        return False
    if device.type == "cuda":
        return True
    return os.environ.get("TRITON_INTERPRET") == "1"


if triton is not None:

    @triton.jit
    def _split_kernel(
        Q, KN, VN, K, V, POS, MO, LO, AO,
        sq_b, sq_h, skn_b, skn_h, svn_b, svn_h,
        sk_b, sk_h, sk_s, sv_b, sv_h, sv_s,
        sm_b, sm_h, sm_s, sa_b, sa_h, sa_s, sa_g,
        scale,
        G: tl.constexpr, GP: tl.constexpr, D: tl.constexpr,
        BLOCK: tl.constexpr, SPLIT_N: tl.constexpr, IEEE: tl.constexpr,
    ):  # fmt: skip
        b = tl.program_id(0)
        h = tl.program_id(1)
        s = tl.program_id(2)
        pos = tl.load(POS + b)
        length = pos + 1
        start = s * SPLIT_N
        end = tl.minimum(start + SPLIT_N, length)
        g = tl.arange(0, GP)
        d = tl.arange(0, D)
        gm = g < G
        q = tl.load(
            Q + b * sq_b + (h * G + g)[:, None] * sq_h + d[None, :], mask=gm[:, None], other=0.0
        )
        kn = tl.load(KN + b * skn_b + h * skn_h + d)
        vn = tl.load(VN + b * svn_b + h * svn_h + d)
        m_i = tl.full([GP], float("-inf"), tl.float32)
        l_i = tl.zeros([GP], tl.float32)
        acc = tl.zeros([GP, D], tl.float32)
        for i in range(0, SPLIT_N // BLOCK):  # static trip count: Triton's interpreter too
            n0 = start + i * BLOCK
            if n0 < end:
                offs = n0 + tl.arange(0, BLOCK)
                valid = offs < end
                new = offs == pos
                k = tl.load(K + b * sk_b + h * sk_h + offs[:, None] * sk_s + d[None, :],
                            mask=valid[:, None] & ~new[:, None], other=0.0)  # fmt: skip
                k = tl.where(new[:, None], kn[None, :], k)
                if IEEE:
                    qk = tl.dot(q, tl.trans(k), input_precision="ieee")
                else:
                    qk = tl.dot(q, tl.trans(k))
                qk = tl.where(valid[None, :], qk * scale, float("-inf"))
                m_new = tl.maximum(m_i, tl.max(qk, 1))
                p = tl.exp(qk - m_new[:, None])
                alpha = tl.exp(m_i - m_new)
                l_i = l_i * alpha + tl.sum(p, 1)
                v = tl.load(V + b * sv_b + h * sv_h + offs[:, None] * sv_s + d[None, :],
                            mask=valid[:, None] & ~new[:, None], other=0.0)  # fmt: skip
                v = tl.where(new[:, None], vn[None, :], v)
                if IEEE:
                    pv = tl.dot(p.to(v.dtype), v, input_precision="ieee")
                else:
                    pv = tl.dot(p.to(v.dtype), v)
                acc = acc * alpha[:, None] + pv
                m_i = m_new
        base_m = b * sm_b + h * sm_h + s * sm_s
        tl.store(MO + base_m + g, m_i)
        tl.store(LO + base_m + g, l_i)
        tl.store(AO + b * sa_b + h * sa_h + s * sa_s + g[:, None] * sa_g + d[None, :], acc)
        if (pos >= start) & (pos < start + SPLIT_N):  # this split holds the new slot
            tl.store(K + b * sk_b + h * sk_h + pos * sk_s + d, kn)
            tl.store(V + b * sv_b + h * sv_h + pos * sv_s + d, vn)

    @triton.jit
    def _combine_kernel(
        MO, LO, AO, POS, OUT,
        sm_b, sm_h, sm_s, sa_b, sa_h, sa_s, sa_g, so_b, so_h,
        G: tl.constexpr, GP: tl.constexpr, D: tl.constexpr, SPLIT_N: tl.constexpr,
        NSPLIT: tl.constexpr,
    ):  # fmt: skip
        b = tl.program_id(0)
        h = tl.program_id(1)
        pos = tl.load(POS + b)
        n_split = pos // SPLIT_N + 1
        g = tl.arange(0, GP)
        d = tl.arange(0, D)
        m = tl.full([GP], float("-inf"), tl.float32)
        l_sum = tl.zeros([GP], tl.float32)
        acc = tl.zeros([GP, D], tl.float32)
        for s in range(0, NSPLIT):
            if s < n_split:
                base_m = b * sm_b + h * sm_h + s * sm_s
                ms = tl.load(MO + base_m + g)
                ls = tl.load(LO + base_m + g)
                a = tl.load(AO + b * sa_b + h * sa_h + s * sa_s + g[:, None] * sa_g + d[None, :])
                m_new = tl.maximum(m, ms)
                w_old = tl.exp(m - m_new)
                w_new = tl.exp(ms - m_new)
                l_sum = l_sum * w_old + ls * w_new
                acc = acc * w_old[:, None] + a * w_new[:, None]
                m = m_new
        out = acc / l_sum[:, None]
        gm = g < G
        tl.store(OUT + b * so_b + (h * G + g)[:, None] * so_h + d[None, :],
                 out.to(OUT.dtype.element_ty), mask=gm[:, None])  # fmt: skip


def decode_attention(
    q: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    pos: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """One query per row over cache slots ``0 .. pos[row]``, after writing slot ``pos[row]``.

    ``q`` (B, Hq, D); ``k_new``/``v_new`` (B, Hkv, D), written into ``k_cache``/``v_cache``
    (B, Hkv, S, D) at ``pos``; returns (B, Hq, D) in ``q``'s dtype.  ``D`` is a power of two.
    """
    q, k_new, v_new = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k_new, v_new))
    if k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1:
        raise ValueError("the KV cache's last dimension must be contiguous")
    bsz, hq, dim = q.shape
    hkv, slots = k_cache.shape[1], k_cache.shape[2]
    group = hq // hkv
    gp = max(16, triton.next_power_of_2(group))
    n_split = triton.cdiv(slots, SPLIT)
    dev = q.device
    mo = torch.empty((bsz, hkv, n_split, gp), dtype=torch.float32, device=dev)
    lo = torch.empty_like(mo)
    ao = torch.empty((bsz, hkv, n_split, gp, dim), dtype=torch.float32, device=dev)
    out = torch.empty_like(q)
    ieee = q.dtype == torch.float32
    _split_kernel[(bsz, hkv, n_split)](
        q, k_new, v_new, k_cache, v_cache, pos, mo, lo, ao,
        q.stride(0), q.stride(1), k_new.stride(0), k_new.stride(1),
        v_new.stride(0), v_new.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
        mo.stride(0), mo.stride(1), mo.stride(2),
        ao.stride(0), ao.stride(1), ao.stride(2), ao.stride(3),
        float(scale),
        G=group, GP=gp, D=dim, BLOCK=BLOCK_N, SPLIT_N=SPLIT, IEEE=ieee,
    )  # fmt: skip
    _combine_kernel[(bsz, hkv)](
        mo, lo, ao, pos, out,
        mo.stride(0), mo.stride(1), mo.stride(2),
        ao.stride(0), ao.stride(1), ao.stride(2), ao.stride(3),
        out.stride(0), out.stride(1),
        G=group, GP=gp, D=dim, SPLIT_N=SPLIT, NSPLIT=n_split,
    )  # fmt: skip
    return out


def reference_attention(
    q: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    pos: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """:func:`decode_attention` with torch ops (the cache write, then masked SDPA)."""
    bsz, hq, dim = q.shape
    hkv, slots = k_cache.shape[1], k_cache.shape[2]
    rows = torch.arange(bsz, device=q.device)
    k_cache[rows, :, pos] = k_new
    v_cache[rows, :, pos] = v_new
    mask = (torch.arange(slots, device=q.device)[None, :] <= pos[:, None])[:, None, None, :]
    qg = q.reshape(bsz, hkv, hq // hkv, dim)
    o = F.scaled_dot_product_attention(qg, k_cache, v_cache, attn_mask=mask, scale=scale)
    return o.reshape(bsz, hq, dim)


_CHECKED: dict[tuple, bool] = {}


def usable(device: torch.device, dtype: torch.dtype, hq: int, hkv: int, dim: int) -> bool:
    """Whether :func:`decode_attention` runs here and agrees with SDPA on these shapes.

    Checked once per process and shape on random data (ragged lengths, a length crossing a
    split, the cache write); any failure logs why and makes the decoder use SDPA instead.
    """
    key = (str(device), dtype, hq, hkv, dim)
    if key in _CHECKED:
        return _CHECKED[key]
    ok = False
    if available(device) and hq % hkv == 0 and dim >= 16 and dim & (dim - 1) == 0:
        try:
            ok = _self_check(device, dtype, hq, hkv, dim)
        except Exception as err:  # noqa: BLE001 - any compile or launch failure: use SDPA
            log.warning("Triton decode attention unusable here (%s): using SDPA", err)
            ok = False
    _CHECKED[key] = ok
    return ok


def _self_check(device: torch.device, dtype: torch.dtype, hq: int, hkv: int, dim: int) -> bool:
    gen = torch.Generator(device="cpu").manual_seed(0)
    bsz, slots = 5, 2 * SPLIT + 64
    lengths = torch.tensor([1, 37, SPLIT, SPLIT + 1, slots - 1])
    pos = (lengths - 1).to(device)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    q, kn, vn = rnd(bsz, hq, dim), rnd(bsz, hkv, dim), rnd(bsz, hkv, dim)
    kc, vc = rnd(bsz, hkv, slots, dim), rnd(bsz, hkv, slots, dim)
    kc2, vc2 = kc.clone(), vc.clone()
    scale = 1 / math.sqrt(dim)
    want = reference_attention(q, kn, vn, kc, vc, pos, scale)
    got = decode_attention(q, kn, vn, kc2, vc2, pos, scale)
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    err = ((got.float() - want.float()).norm() / want.float().norm()).item()
    same_cache = torch.equal(kc, kc2) and torch.equal(vc, vc2)
    if err > tol or not same_cache:
        log.warning(
            "Triton decode attention disagrees with SDPA (relative error %.2e, cache %s): "
            "using SDPA",
            err,
            "equal" if same_cache else "differs",
        )
        return False
    return True
