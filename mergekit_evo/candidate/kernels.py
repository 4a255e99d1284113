"""MergeKit's task-arithmetic family over *stacks* of same-shaped tensors: one call per group.

MergeKit 0.1.5 merges one output tensor at a time (``GeneralizedTaskArithmeticMerge.merge_group``
with ``mergekit.sparsify``): on a 24-layer model that is ~290 calls, each with host work and,
for TIES, an ``argsort`` per task vector.  Here row ``i`` of every argument is one output tensor
(e.g. layer ``i``'s ``q_proj``), and the operations are MergeKit's, in its order and dtypes, so a
deterministic method gives MergeKit's bits:

- a task vector is ``source - base`` in the compute dtype, sparsified, then multiplied by its
  weight (rounded to the compute dtype, as ``torch.tensor(weights, dtype=deltas.dtype)`` does);
- TIES' sign consensus, the divisor fix-ups, ``normalize``, ``lambda`` (applied in the
  element-wise ops' float math, like ``tensor *= python_float``) and the final cast follow
  ``merge_group`` line by line;
- ``magnitude`` / ``magnitude_outliers`` masks compare *ranks* with per-row cut-offs
  (``rank < k``): the ranks are the inverse of the very ``argsort`` / ``sort`` call MergeKit
  makes on the same task vector (:func:`flat_ranks`), computed once per source since a task
  vector does not change between candidates, so ties between equal magnitudes fall exactly as
  in MergeKit;
- ``rescale`` (L1) of a deterministic method sums each row on its own, the reduction MergeKit runs.

Random masks (DARE's ``random``, DELLA's ``della_magprune``) are drawn for a whole stack at once
on the device (``torch.rand < p``, with ``p`` rounded to the work dtype as ``torch.bernoulli`` of
a ``full_like`` tensor sees it): the same keep probabilities and rescaling as MergeKit's, not its
random stream.  Data-dependent branches (``if before < eps``, ``divisor[divisor == 0] = 1``)
become ``torch.where`` / ``masked_fill``: nothing here waits for the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

_EPS = 1e-7  # mergekit.sparsify.rescaled_masked_tensor's default


@dataclass(frozen=True)
class GTAKind:
    """What a GTA method does, read off MergeKit's registered instance."""

    consensus: str | None  # "sum" | "count" | None
    sparsification: str | None  # mergekit.sparsify.SparsificationMethod value, or None

    @property
    def rank_kind(self) -> str | None:
        """Which cached ranks the sparsification reads (None: none)."""
        return {"magnitude": "desc", "magnitude_outliers": "asc", "della_magprune": "row"}.get(
            self.sparsification or ""
        )

    @property
    def stochastic(self) -> bool:
        return self.sparsification in ("random", "della_magprune")


def gta_kind(method_name: str) -> GTAKind | None:
    """The :class:`GTAKind` of a MergeKit method, or None if it is not task arithmetic."""
    from mergekit import merge_methods
    from mergekit.merge_methods.generalized_task_arithmetic import (
        GeneralizedTaskArithmeticMerge,
    )

    try:
        method = merge_methods.get(method_name)
    except RuntimeError:
        return None
    if not isinstance(method, GeneralizedTaskArithmeticMerge):
        return None
    consensus = method.consensus_method.value if method.consensus_method else None
    sparse = method.sparsification_method.value if method.sparsification_method else None
    if sparse not in (None, "magnitude", "random", "magnitude_outliers", "della_magprune"):
        return None
    return GTAKind(consensus, sparse)


def work_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """``bernoulli`` / ``della_magprune``'s work dtype (float32 for CPU float16 only)."""
    if device.type != "cpu" or dtype == torch.bfloat16:
        return dtype
    return torch.float32


def opmath_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype PyTorch computes ``tensor * python_float`` in for ``dtype`` tensors."""
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


# ------------------------------------------------------------------------------- ranks
def flat_ranks(delta: torch.Tensor, kind: str) -> torch.Tensor:
    """Rank of every element of one task vector in MergeKit's own sort of its magnitudes.

    ``desc``: position in ``torch.argsort(w, descending=True)`` (``sparsify.magnitude``);
    ``asc``: position in ``torch.sort(w, descending=False).indices`` (``magnitude_outliers``),
    where ``w = |delta|`` flattened, in float32 on the CPU, as MergeKit computes it.  Returned
    flat, int32.  ``row``: ``della_magprune``'s ``argsort(argsort(|delta|, dim=1), dim=1)``
    (a 1-D tensor as one row), in the tensor's shape.
    """
    if kind == "row":
        t = delta.unsqueeze(0) if delta.dim() < 2 else delta
        ranks = torch.argsort(t.abs(), dim=1, descending=False).argsort(dim=1)
        return ranks.reshape(delta.shape).to(torch.int32)
    w = delta.abs().reshape(-1)
    if w.device.type == "cpu":
        w = w.float()
    if kind == "desc":
        order = torch.argsort(w, descending=True)
    elif kind == "asc":
        order = torch.sort(w, descending=False).indices
    else:
        raise ValueError(f"unknown rank kind {kind!r}")
    ranks = torch.empty(w.numel(), dtype=torch.int32, device=w.device)
    ranks[order] = torch.arange(w.numel(), dtype=torch.int32, device=w.device)
    return ranks


# ------------------------------------------------------------------------------- rows
@dataclass
class GTARows:
    """Per-row arguments of one stack (M non-base inputs x c rows), already on the device.

    Host-side values decide only Python branches that are the same for every candidate of a
    recipe shape or are read off the recipe itself (never off a device tensor).
    """

    weight: torch.Tensor  # (M, c) compute dtype
    lam: torch.Tensor | None  # (c,) opmath dtype; None when every lambda is 1
    cut_lo: torch.Tensor | None  # (M, c) int64: keep ranks in [cut_lo, cut_hi)
    cut_hi: torch.Tensor | None
    prob: torch.Tensor | None  # (M, c) float32: DARE keep probability (work-dtype rounded)
    della_lo: torch.Tensor | None  # (M, c) opmath: density - epsilon
    della_eps: torch.Tensor | None  # (M, c) opmath: epsilon
    keep: torch.Tensor | None  # (M, c) bool: density >= 1 (task vector as it is)
    zero: torch.Tensor | None  # (M, c) bool: density <= 0 (zeros)
    normalize: bool
    rescale: bool
    int8_mask: bool


def magnitude_cuts(density: float, numel: int) -> tuple[int, int]:
    """``sparsify.magnitude``'s kept ranks: ``[0, k)``; density >= 1 keeps all."""
    if density >= 1:
        return 0, numel
    if density <= 0 or numel == 0:
        return 0, 0
    return 0, max(1, int(density * numel))


def outlier_cuts(density: float, gamma: float, numel: int) -> tuple[int, int]:
    """``sparsify.magnitude_outliers``' kept ranks: ``indices[n_bot : n_bot + target_n]``."""
    if density >= 1:
        return 0, numel
    target_n = int(density * numel)
    n_top = int(gamma * numel)
    n_bot = max(0, numel - target_n - n_top)
    start, stop, _ = slice(n_bot, n_bot + target_n).indices(numel)  # Python's slice rules
    return start, max(start, stop)


def check_della(density: float, epsilon: float) -> None:
    """``sparsify.della_magprune``'s own argument check (raised before any merge work)."""
    if 0 < density < 1 and (density + epsilon >= 1 or density - epsilon <= 0):
        raise ValueError("Epsilon must be chosen such that density +/- epsilon is in (0, 1)")


# ------------------------------------------------------------------------------- kernels
def _row_view(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(c,) or (M, c) per-row values shaped to broadcast against a stack of ``like``'s rank."""
    return v.reshape(*v.shape, *([1] * (like.dim() - v.dim())))


def _rescale_exact(tensor: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """``rescaled_masked_tensor`` (L1) row by row: each row's sums are MergeKit's reductions."""
    out = []
    for t, m in zip(tensor.unbind(0), masked.unbind(0), strict=True):
        before = t.abs().sum()
        after = m.abs().sum()
        small = (before < _EPS) | (after < _EPS)
        out.append(torch.where(small, m, m * (before / after)))
    return torch.stack(out)


def _rescale_batched(tensor: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """The same L1 rescale with one reduction per stack (random masks: order need not match)."""
    dims = tuple(range(1, tensor.dim()))
    before = tensor.abs().sum(dim=dims, keepdim=True)
    after = masked.abs().sum(dim=dims, keepdim=True)
    small = (before < _EPS) | (after < _EPS)
    return torch.where(small, masked, masked * (before / after))


def sparsify_rows(
    delta: torch.Tensor,
    m: int,
    kind: GTAKind,
    rows: GTARows,
    ranks: torch.Tensor | None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``mergekit.sparsify.sparsify`` of input ``m``'s task vectors (rows of ``delta``)."""
    method = kind.sparsification
    if method in ("magnitude", "magnitude_outliers"):
        assert ranks is not None and rows.cut_lo is not None and rows.cut_hi is not None
        r = _row_view(ranks)
        lo, hi = rows.cut_lo[m][:, None], rows.cut_hi[m][:, None]
        mask = ((r >= lo) & (r < hi)).to(delta.dtype).reshape(delta.shape)
        masked = delta * mask
        if rows.rescale:
            masked = _rescale_exact(delta, masked)
        if rows.zero is not None:  # ``zeros_like`` in MergeKit: +0, not the sign of 0 * x
            masked = masked.masked_fill(_bcast(rows.zero[m], masked), 0)
        return masked
    wd = work_dtype(delta.dtype, delta.device)
    t = delta.to(wd)
    if method == "random":
        assert rows.prob is not None
        u = torch.rand(t.shape, generator=generator, device=t.device, dtype=torch.float32)
        mask = (u < _bcast(rows.prob[m], u)).to(wd)
        masked = t * mask
        res = _rescale_batched(t, masked) if rows.rescale else masked
        return res.to(delta.dtype)
    if method == "della_magprune":
        assert ranks is not None and rows.della_lo is not None and rows.della_eps is not None
        shaped = t if t.dim() > 2 else t.unsqueeze(1)  # (c, rows, cols); 1-D tensors: one row
        rk = (ranks if ranks.dim() > 2 else ranks.unsqueeze(1)).to(wd) + 1
        rmin = rk.amin(dim=-1, keepdim=True)
        rmax = rk.amax(dim=-1, keepdim=True)
        rank_norm = ((rk - rmin) / (rmax - rmin)).clamp(0, 1)
        om = opmath_dtype(wd)
        # (density - epsilon) + rank_norm * 2 * epsilon, each op rounded as MergeKit's is
        scaled = ((rank_norm * 2).to(om) * _bcast(rows.della_eps[m], rank_norm)).to(wd)
        probs = (scaled.to(om) + _bcast(rows.della_lo[m], rank_norm)).to(wd)
        u = torch.rand(probs.shape, generator=generator, device=t.device, dtype=torch.float32)
        mask = (u < probs.float()).to(wd)
        masked = shaped * mask
        res = _rescale_batched(shaped, masked) if rows.rescale else masked
        res = res.reshape(t.shape).to(delta.dtype)
        if rows.keep is not None:
            res = torch.where(_bcast(rows.keep[m], res), delta, res)
        if rows.zero is not None:
            res = res.masked_fill(_bcast(rows.zero[m], res), 0)
        return res
    raise ValueError(f"unsupported sparsification {method!r}")


def gta_merge(
    base: torch.Tensor,
    sources: Sequence[torch.Tensor],
    kind: GTAKind,
    rows: GTARows,
    ranks: Sequence[torch.Tensor | None],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``GeneralizedTaskArithmeticMerge.merge_group`` for every row of the stacks at once.

    ``base`` and each of ``sources`` (the non-base inputs, MergeKit's entry order) are
    ``(c, *shape)`` in the compute dtype; ``ranks[m]`` are input ``m``'s cached ranks.
    """
    if not sources:
        return base
    deltas = base.new_empty((len(sources), *base.shape))
    for m, src in enumerate(sources):
        delta = src - base
        if kind.sparsification:
            delta = sparsify_rows(delta, m, kind, rows, ranks[m], generator)
        deltas[m] = delta
        del delta
    weights = _bcast(rows.weight, deltas)  # (M, c, 1, ...)
    deltas.mul_(weights)
    if kind.consensus:
        mask_dtype = torch.int8 if rows.int8_mask else base.dtype
        sign = deltas.sign().to(mask_dtype)
        if kind.consensus == "sum":
            majority = (deltas.sum(dim=0) >= 0).to(mask_dtype) * 2 - 1
        else:
            majority = (sign.sum(dim=0) >= 0).to(mask_dtype) * 2 - 1
        mask = sign == majority
        del sign, majority
        mixed = (deltas * mask).sum(dim=0)
        divisor = (weights * mask).sum(dim=0)
        divisor = divisor.masked_fill(divisor == 0, 1)
    else:
        mixed = deltas.sum(dim=0)
        divisor = weights.sum(dim=0)
        divisor = divisor.masked_fill(divisor.abs() < 1e-8, 1)
    if rows.normalize:
        mixed /= divisor
    if rows.lam is not None:
        om = opmath_dtype(mixed.dtype)
        mixed = (mixed.to(om) * _bcast(rows.lam, mixed).to(om)).to(mixed.dtype)
    return (base + mixed).to(base.dtype)
