"""Batched merge kernels against MergeKit's own per-tensor methods (CPU).

Deterministic methods must give MergeKit's bits, row for row (also in bfloat16, where many task
vector entries share a magnitude and the order of the sort decides which survive).  DARE and
DELLA draw their masks differently, so they are compared in distribution: keep rate, keep rate
by magnitude rank (DELLA) and the L1 rescaling.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from mergekit_evo.candidate.batched import Pack, gta_rows, row_values, stack_ranks
from mergekit_evo.candidate.kernels import gta_kind, gta_merge


def _mergekit(method: str, base, srcs, shared: dict, per: list[dict]) -> torch.Tensor:
    """MergeKit's own merge of one output tensor (``GroupMergeMethod.__call__``)."""
    from mergekit import merge_methods
    from mergekit.merge_methods.base import TensorGroup

    ids = ["base", *[f"s{i}" for i in range(len(srcs))]]
    group = TensorGroup.from_tensors([base, *srcs], ids=ids, base_index=0)
    params: dict[str, Any] = dict(shared)
    for name in per[0]:
        params[name] = {ids[i + 1]: p[name] for i, p in enumerate(per)}
    (out,) = merge_methods.get(method)((group,), parameters=params)
    return out


def _resolved(method: str, shared: dict, per: dict) -> tuple[dict, dict]:
    """A row's (shared, per-input) parameters with MergeKit's defaults filled in."""
    from mergekit import merge_methods

    spec = merge_methods.get(method).spec
    s = {p.name: shared.get(p.name, p.default) for p in spec.shared_parameters}
    q = {p.name: per.get(p.name, p.default) for p in spec.input_parameters}
    return s, q


def _ours(method: str, base, srcs, shared_rows: list[dict], per_rows: list[list[dict]], gen=None):
    kind = gta_kind(method)
    assert kind is not None
    ids = ["base", *[f"s{i}" for i in range(len(srcs))]]
    params = []
    for r, shared in enumerate(shared_rows):
        s, _ = _resolved(method, shared, {})
        per = {ids[i + 1]: _resolved(method, {}, per_rows[i][r])[1] for i in range(len(srcs))}
        params.append((s, per))
    ranks = [stack_ranks(base, s, kind.rank_kind) if kind.rank_kind else None for s in srcs]
    pack = Pack(base.device)
    rows = row_values(kind, base.dtype, base.shape[1:], tuple(ids), "base", params, pack)
    pack.send()
    return gta_merge(base, srcs, kind, gta_rows(pack.bind(rows)), ranks, gen)


def _stacks(dtype: torch.dtype, shape: tuple[int, ...], rows: int, n_src: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(rows, *shape, generator=g).to(dtype)
    srcs = []
    for _ in range(n_src):
        if dtype == torch.bfloat16:  # few distinct magnitudes: many ties at every cut-off
            step = torch.randint(-4, 5, (rows, *shape), generator=g).to(torch.float32) / 64
            srcs.append((base.float() + step).to(dtype))
        else:
            srcs.append((base + 0.1 * torch.randn(rows, *shape, generator=g)).to(dtype))
    return base, srcs


DETERMINISTIC = [
    ("task_arithmetic", {"lambda": 0.8}),
    ("task_arithmetic", {"normalize": True}),
    ("ties", {}),
    ("ties", {"normalize": False, "rescale": True}),
    ("ties", {"int8_mask": True, "lambda": 1.3}),
    ("breadcrumbs", {}),
    ("breadcrumbs_ties", {"rescale": True}),
]


@pytest.mark.parametrize(("method", "shared"), DETERMINISTIC)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(24, 40), (200,)])
def test_deterministic_rows_equal_mergekit(method, shared, dtype, shape) -> None:
    rows = 5
    base, srcs = _stacks(dtype, shape, rows, 2, seed=len(method) + len(shape))
    dens = [[0.3, 1.0, 0.0, 0.75, 0.5], [0.6, 0.2, 0.9, 1.0, 0.05]]
    weights = [[1.0, 0.5, -0.7, 0.0, 1.2], [0.4, 0.9, 0.3, 1.1, 0.0]]
    per_rows = [
        [{"weight": weights[m][r], "density": dens[m][r], "gamma": 0.02 * (m + 1)}
         for r in range(rows)]
        for m in range(2)
    ]  # fmt: skip
    if method == "task_arithmetic":
        per_rows = [[{"weight": p["weight"]} for p in row] for row in per_rows]
    elif not method.startswith("breadcrumbs"):
        per_rows = [[{k: v for k, v in p.items() if k != "gamma"} for p in row] for row in per_rows]
    got = _ours(method, base, srcs, [shared] * rows, per_rows)
    for r in range(rows):
        want = _mergekit(method, base[r], [s[r] for s in srcs], shared, [p[r] for p in per_rows])
        torch.testing.assert_close(got[r], want, rtol=0, atol=0, msg=f"row {r}")


def _dare_rows(method: str, dens: list[float], rows: int, shape=(128, 128), seed=0):
    base, srcs = _stacks(torch.float32, shape, rows, 1, seed)
    per = [[{"weight": 1.0, "density": d, "epsilon": 0.1} for d in dens]]
    if not method.startswith("della"):
        per = [[{k: v for k, v in p.items() if k != "epsilon"} for p in per[0]]]
    return base, srcs, per


@pytest.mark.parametrize("method", ["dare_linear", "dare_ties", "della_linear", "della"])
def test_random_masks_keep_rate_and_l1_match_mergekit(method: str) -> None:
    dens = [0.2, 0.5, 0.8]
    base, srcs, per = _dare_rows(method, dens, len(dens))
    torch.manual_seed(0)
    got = _ours(method, base, srcs, [{}] * len(dens), per)
    n = base[0].numel()
    for r, d in enumerate(dens):
        delta = srcs[0][r] - base[r]
        torch.manual_seed(1 + r)
        want = _mergekit(method, base[r], [srcs[0][r]], {}, [per[0][r]])
        for out in (got[r], want):
            kept = ((out - base[r]) != 0).float().mean().item()
            sigma = (d * (1 - d) / n) ** 0.5
            assert abs(kept - d) < 6 * sigma + 1e-3, (method, d, kept)
            l1 = (out - base[r]).abs().sum() / delta.abs().sum()
            # rescaled to the task vector's L1 (della normalizes by the kept weight: 1 here)
            assert abs(l1.item() - 1.0) < 1e-3, (method, d, l1)
        assert not torch.equal(got[r], want)  # a different draw, not a copy


def test_della_keeps_large_magnitudes_more_often_like_mergekit() -> None:
    d, eps = 0.5, 0.2
    base, srcs, per = _dare_rows("della_linear", [d], 1, shape=(64, 512), seed=3)
    per[0][0]["epsilon"] = eps
    delta = srcs[0][0] - base[0]
    ranks = delta.abs().argsort(dim=1).argsort(dim=1).float() / (delta.shape[1] - 1)

    def by_decile(out: torch.Tensor) -> list[float]:
        kept = (out - base[0]) != 0
        return [kept[(ranks >= q / 10) & (ranks < (q + 1) / 10 + 1e-9)].float().mean().item()
                for q in range(10)]  # fmt: skip

    torch.manual_seed(5)
    ours = by_decile(_ours("della_linear", base, srcs, [{}], per)[0])
    want = by_decile(_mergekit("della_linear", base[0], [srcs[0][0]], {}, [per[0][0]]))
    for q in range(10):
        expect = d - eps + 2 * eps * (q + 0.5) / 10
        assert abs(ours[q] - expect) < 0.03 and abs(want[q] - expect) < 0.03, (q, ours, want)


def test_random_masks_are_seeded() -> None:
    base, srcs, per = _dare_rows("dare_ties", [0.4, 0.6], 2, shape=(32, 32))
    torch.manual_seed(7)
    a = _ours("dare_ties", base, srcs, [{}] * 2, per)
    torch.manual_seed(7)
    b = _ours("dare_ties", base, srcs, [{}] * 2, per)
    assert torch.equal(a, b)


def test_della_epsilon_out_of_range_is_refused_before_merging() -> None:
    base, srcs, per = _dare_rows("della", [0.1], 1, shape=(8, 8))
    per[0][0]["epsilon"] = 0.2
    with pytest.raises(ValueError, match="Epsilon"):
        _ours("della", base, srcs, [{}], per)


GIB = 2**30


def test_rank_cache_guard_counts_what_is_resident_and_keeps_room_to_evaluate() -> None:
    """The H200's 7B-shaped stage in numbers: 6.17B parameters a model, bf16, TIES over two
    sources (ranks: 4 bytes x 2 x 6.17e9 = 46 GiB) on a 139.8 GiB card."""
    from mergekit_evo.candidate.batched import RANK_CACHE_RESERVE, rank_cache_fits

    total = int(139.8 * GIB)
    model = int(6.174e9 * 2)  # one bf16 copy
    need = 4 * 2 * int(6.174e9)
    context = GIB  # CUDA context, cuBLAS workspaces
    # resident: base, a, b and the working model -> ranks fit, with the reserve left over
    free = total - 4 * model - context
    assert rank_cache_fits(need, free, 0, total)
    # a float32 copy of the model loaded beside them (what ran out of memory): no cache
    assert not rank_cache_fits(need, free - 2 * model, 0, total)
    # blocks PyTorch caches but no tensor uses are as good as free
    assert rank_cache_fits(need, free - 2 * model - 10 * GIB, free, total)
    # the reserve is the card's: it does not shrink as the card fills up
    spare = need + int(total * RANK_CACHE_RESERVE)
    assert rank_cache_fits(need, spare, 0, total) and not rank_cache_fits(need, spare - 1, 0, total)
    # a merge chunk's scratch larger than the reserve must fit too
    assert not rank_cache_fits(need, spare, 0, total, scratch=int(total * RANK_CACHE_RESERVE) + 1)
