"""A PS candidate merged in place a *group* of tensors at a time, with no host synchronisation.

MergeKit's own plan (:mod:`.planning`) says what every output tensor is: its inputs, method and
resolved parameters.  Running its ~290 tasks one by one costs ~0.3 s on an H200 (per-tensor
host work, an ``argsort`` per TIES task vector, a host sync per tensor).  Here:

- **one plan per recipe shape.**  Candidates of a search differ only in numbers, so the plan
  (which tensor, which inputs, which ``t``) is made once per shape (the recipe with its numbers
  blanked) and each candidate's parameters come from MergeKit's ``resolve_parameters`` over the
  recorded calls (:func:`~.planning.resolve_like_planner`), checked against the real plan's
  parameters the first time;
- **one kernel call per group.**  Same-shaped outputs of the same role (every layer's
  ``q_proj``, ...) are stacked and merged by :mod:`.kernels` (``linear``: MergeKit's own batched
  kernel, ``merge_batch``), in chunks that bound the scratch memory, and copied into the working
  model with one multi-tensor copy;
- **ranks cached.**  TIES / breadcrumbs / DELLA sort each task vector's magnitudes; the task
  vectors do not change between candidates, so their ranks are computed once (MergeKit's own
  sort call) and a mask is a comparison;
- **no host syncs.**  Every per-row number of a candidate is packed on the host and sent in one
  copy before the first kernel; nothing afterwards reads a device value.

Deterministic methods give MergeKit's bits (the CPU tests compare with ``mergekit-yaml``).  DARE
and DELLA draw their masks on the device (:mod:`.kernels`), so they are seeded and reproducible
but not ``mergekit-yaml``'s draws: ``ResidentCandidateBuilder.exact_for`` says so.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from mergekit_evo.candidate.kernels import (
    GTAKind,
    GTARows,
    check_della,
    flat_ranks,
    gta_kind,
    gta_merge,
    magnitude_cuts,
    opmath_dtype,
    outlier_cuts,
    work_dtype,
)

log = logging.getLogger(__name__)

#: methods merged here (everything else runs MergeKit's per-tensor tasks)
BATCHED_METHODS = (
    "linear",
    "task_arithmetic",
    "ties",
    "dare_ties",
    "dare_linear",
    "breadcrumbs",
    "breadcrumbs_ties",
    "della",
    "della_linear",
)
CHUNK_ELEMENTS = 1 << 28  # elements of one input's stack per kernel call (bounds scratch)
#: what a rank cache must leave free on the card, as a fraction of it: the evaluation after the
#: merge (KV cache, prefill activations, logits, CUDA-graph pools) and the merge's own scratch
RANK_CACHE_RESERVE = 0.2
_LAYER = re.compile(r"(?<=\.)\d+(?=\.)")


def shape_key(config: Any) -> str:
    """The recipe with every number blanked: candidates with one key share one plan."""

    def blank(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: blank(v) for k, v in value.items()}
        if isinstance(value, list):
            return [blank(v) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return "#"
        return value

    return json.dumps(blank(config.model_dump(mode="json", exclude_none=True)), sort_keys=True)


@dataclass
class _Row:
    """One output tensor: where it goes and what it is made of."""

    name: str
    layer: int
    inputs: tuple[Any, ...]  # model references, MergeKit's entry order
    base: Any
    sources: tuple[torch.Tensor, ...]  # resident tensors, same order as ``inputs``


@dataclass
class _Group:
    """Rows merged by one kernel call per chunk (same role, shape, inputs, dtype)."""

    rows: list[_Row]
    shape: torch.Size
    compute: torch.dtype
    chunks: list[tuple[int, int]] = field(default_factory=list)
    ranks: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)  # (chunk, m)


@dataclass
class _Plan:
    """One recipe shape's groups and the planner's calls (None: resolve by planning)."""

    method: str
    kind: GTAKind | None  # None: linear
    groups: list[_Group]
    task_index: list[tuple[int, int]]  # (group, row) of each planned task, plan order
    calls: list[Any] | None
    cache_ranks: bool = True


def rank_cache_need(plan: _Plan) -> int:
    """Bytes of a plan's rank cache: int32 ranks of every non-base input's task vectors."""
    return sum(4 * g.shape.numel() * len(g.rows) * (len(g.rows[0].inputs) - 1) for g in plan.groups)


def chunk_scratch_bytes(plan: _Plan) -> int:
    """The largest chunk's working memory during a merge: its inputs' stacks and as much again
    for the task vectors, masks and sorted copies, in float32 at most."""
    most = 0
    for g in plan.groups:
        rows = max((b - a for a, b in g.chunks), default=0)
        most = max(most, 2 * 4 * g.shape.numel() * rows * len(g.rows[0].inputs))
    return most


def rank_cache_fits(
    need: int,
    free: int,
    allocator_unused: int,
    total: int,
    scratch: int = 0,
    reserve: float = RANK_CACHE_RESERVE,
) -> bool:
    """Whether ``need`` bytes of ranks may stay on the card for the whole search.

    ``free`` (the driver's) and ``allocator_unused`` (blocks PyTorch caches but no tensor uses)
    are what is left once everything resident is counted out: the sources, the working model,
    other plans' caches.  The ranks must leave ``reserve`` of the card (``total``), and at least
    one chunk's ``scratch``, for what comes after the merge: the decoder's KV cache, prefill
    activations and graphs.  (The rule it replaces, 60% of the driver's free memory, scaled the
    headroom with what happened to be free; a model loaded *later* in the same process is
    never counted here: callers free the builder first, as the benchmark now does.)
    """
    return need + max(int(total * reserve), scratch) <= free + allocator_unused


class NotBatchable(Exception):
    """The recipe (or one of its tensors) needs MergeKit's per-tensor tasks."""


class BatchedMerger:
    """Batched in-place merges for the methods of :data:`BATCHED_METHODS`."""

    def __init__(
        self,
        lookup: Callable[[Any, Any], torch.Tensor],
        device: str,
        rank_cache_bytes: int | None = None,
    ) -> None:
        """``lookup(ref, weight_info)``: a source's resident tensor (raises if it has none)."""
        self.lookup = lookup
        self.device = torch.device(device)
        self.rank_cache_bytes = rank_cache_bytes
        self._plans: dict[str, _Plan] = {}
        self._unbatchable: dict[str, str] = {}  # shape key -> why
        self._staging: torch.Tensor | None = None  # pinned host buffer for the row values
        self._staged: torch.cuda.Event | None = None  # its last copy to the device
        self.last_rows = 0  # output tensors the last merge wrote
        self.last_groups = 0
        self.last_plan_s = 0.0  # host time before the first kernel (plan, parameters, packing)
        self.last_rank_cache: dict[str, Any] = {}  # the last plan's rank-cache decision, bytes

    @staticmethod
    def handles(method: str) -> bool:
        return method in BATCHED_METHODS

    # ----------------------------------------------------------------------------- plans
    def plan(self, config: Any, options: Any) -> tuple[_Plan, list[tuple[dict, dict]]]:
        """The shape's plan and this candidate's (shared, per-input) parameters per task."""
        from mergekit_evo.candidate.planning import plan_tensors, resolve_like_planner

        key = shape_key(config)
        if key in self._unbatchable:
            raise NotBatchable(self._unbatchable[key])
        plan = self._plans.get(key)
        if plan is not None and plan.calls is not None:
            return plan, resolve_like_planner(config, plan.calls)
        calls: list[Any] = []
        planned = plan_tensors(config.model_copy(deep=True), options, calls)  # it edits its config
        params = [(dict(t.parameters.items()), _per_input(t)) for _, t in planned]
        if plan is None:
            try:
                plan = self._make_plan(config, planned, calls)
            except NotBatchable as why:
                self._unbatchable[key] = str(why)
                raise
            fast = resolve_like_planner(config, calls) if not config.slices else None
            if fast is None or not _same_params(fast, params):
                log.info("recipe shape resolved by planning each candidate (no shortcut)")
                plan.calls = None
            self._plans[key] = plan
        return plan, params

    def _make_plan(self, config: Any, planned: list, calls: list) -> _Plan:
        from mergekit.common import dtype_from_name
        from mergekit.io.tasks import GatherTensors

        method = config.merge_method
        kind = None if method == "linear" else gta_kind(method)
        if method != "linear" and kind is None:
            raise NotBatchable(f"{method} has no batched kernel")
        groups: dict[tuple, _Group] = {}
        index: list[tuple[int, int]] = []
        order: list[tuple] = []
        for weight, task in planned:
            gather = task.gather_tensors
            if not isinstance(gather, GatherTensors):
                raise NotBatchable(f"{weight.name}: not a plain gather of tensors")
            infos = dict(gather.weight_info.items())
            refs = tuple(m for m in task.model_order if m in infos)
            if len(refs) != len(task.model_order):
                raise NotBatchable(f"{weight.name}: an input has no such tensor")
            tensors = tuple(self.lookup(ref, infos[ref]) for ref in refs)
            if any(not t.is_floating_point() or t.shape != tensors[0].shape for t in tensors):
                raise NotBatchable(f"{weight.name}: inputs differ in shape or are not floats")
            if kind is not None and task.base_model not in refs:
                raise NotBatchable(f"{weight.name}: task arithmetic without its base")
            forced = {infos[r].force_dtype for r in refs} - {None}
            if len(forced) > 1 or task.dtype or task.out_dtype:
                raise NotBatchable(f"{weight.name}: per-tensor dtypes")
            name = next(iter(forced), None) or config.dtype
            compute = dtype_from_name(name) if name else tensors[0].dtype
            match = _LAYER.search(weight.name)
            role = _LAYER.sub("#", weight.name, count=1) if match else weight.name
            key = (role, tuple(tensors[0].shape), compute, refs, task.base_model)
            if key not in groups:
                groups[key] = _Group([], tensors[0].shape, compute)
                order.append(key)
            group = groups[key]
            index.append((order.index(key), len(group.rows)))
            layer = int(match.group(0)) if match else -1
            group.rows.append(_Row(weight.name, layer, refs, task.base_model, tensors))
        plan = _Plan(method, kind, [groups[k] for k in order], index, calls)
        for group in plan.groups:
            per_row = max(1, group.shape.numel())
            step = max(1, CHUNK_ELEMENTS // per_row)
            n = len(group.rows)
            group.chunks = [(a, min(n, a + step)) for a in range(0, n, step)]
        plan.cache_ranks = self._fits_rank_cache(plan)
        return plan

    def _fits_rank_cache(self, plan: _Plan) -> bool:
        if plan.kind is None or plan.kind.rank_kind is None:
            return True
        need = rank_cache_need(plan)
        if self.rank_cache_bytes is not None:
            fits = need <= self.rank_cache_bytes
            self.last_rank_cache = {"need": need, "limit": self.rank_cache_bytes, "cached": fits}
        elif self.device.type == "cuda":
            free, total = torch.cuda.mem_get_info(self.device)
            unused = torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(
                self.device
            )
            scratch = chunk_scratch_bytes(plan)
            fits = rank_cache_fits(need, free, unused, total, scratch)
            self.last_rank_cache = {"need": need, "free": free, "allocator_unused": unused,
                                    "total": total, "scratch": scratch, "cached": fits}  # fmt: skip
        else:  # host memory: not the card's to guard
            self.last_rank_cache = {"need": need, "cached": True}
            return True
        if not fits:
            log.warning(
                "magnitude ranks need %.1f GiB, more than the card can spare beside the resident "
                "models and the evaluation: sorting every candidate instead",
                need / 2**30,
            )
        return fits

    # ----------------------------------------------------------------------------- merge
    @torch.no_grad()
    def merge(
        self,
        config: Any,
        options: Any,
        targets: dict[str, torch.Tensor],
        generator: torch.Generator | None = None,
    ) -> None:
        """Merge ``config`` into ``targets`` (the working model's tensors, by name)."""
        import time

        t0 = time.perf_counter()
        plan, params = self.plan(config, options)
        missing = [r.name for g in plan.groups for r in g.rows if r.name not in targets]
        if missing:
            raise NotBatchable(f"the working model has no tensor {missing[0]}")
        rows_of = [[(0.0, {})] * len(g.rows) for g in plan.groups]  # type: list[list[Any]]
        for (gi, ri), p in zip(plan.task_index, params, strict=True):
            rows_of[gi][ri] = p
        jobs = []
        pack = Pack(self.device)
        for gi, group in enumerate(plan.groups):
            for ci, (a, b) in enumerate(group.chunks):
                for lo, hi in _runs(rows_of[gi][a:b], plan.method):
                    run = rows_of[gi][a + lo : a + hi]
                    r0 = group.rows[0]
                    rows = row_values(
                        plan.kind, group.compute, group.shape, r0.inputs, r0.base, run, pack
                    )
                    jobs.append((gi, ci, a + lo, a + hi, lo, rows))
        pack.send(self)
        self.last_plan_s = time.perf_counter() - t0
        written = 0
        for gi, ci, a, b, off, rows in jobs:
            group = plan.groups[gi]
            out = self._run(plan, group, ci, a, b, off, pack.bind(rows), generator)
            dest = [targets[r.name] for r in group.rows[a:b]]
            _copy_rows(dest, out)
            written += b - a
        self.last_rows, self.last_groups = written, len(plan.groups)

    def _run(
        self,
        plan: _Plan,
        group: _Group,
        ci: int,
        a: int,
        b: int,
        off: int,
        rows: dict[str, Any],
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        members = group.rows[a:b]
        stacks = [
            torch.stack([r.sources[i].to(group.compute) for r in members])
            for i in range(len(members[0].inputs))
        ]
        if plan.kind is None:
            from mergekit import merge_methods
            from mergekit.merge_methods.base import TensorBatch

            method = merge_methods.get("linear")
            return method.merge_batch(
                TensorBatch(tuple(stacks)), weight=rows["weight"], normalize=rows["normalize"]
            )
        row0 = members[0]
        base_i = row0.inputs.index(row0.base)
        base = stacks[base_i]
        sources = [s for i, s in enumerate(stacks) if i != base_i]
        ranks: list[torch.Tensor | None] = [None] * len(sources)
        if plan.kind.rank_kind is not None:
            ca, cb = group.chunks[ci]
            for m in range(len(sources)):
                full = self._ranks(plan, group, ci, m, base, sources[m], a - ca, b - ca)
                ranks[m] = full[a - ca : b - ca] if full.shape[0] != b - a else full
        return gta_merge(base, sources, plan.kind, gta_rows(rows), ranks, generator)

    def _ranks(
        self,
        plan: _Plan,
        group: _Group,
        ci: int,
        m: int,
        base: torch.Tensor,
        source: torch.Tensor,
        lo: int,
        hi: int,
    ) -> torch.Tensor:
        """Input ``m``'s ranks for the chunk (cached) or for rows ``lo:hi`` of it (not cached)."""
        kind = plan.kind.rank_kind  # type: ignore[union-attr]
        hit = group.ranks.get((ci, m))
        if hit is not None:
            return hit
        if not plan.cache_ranks:
            return stack_ranks(base, source, kind)
        ca, cb = group.chunks[ci]
        if (lo, hi) != (0, cb - ca):  # a sub-run: rank the whole chunk once
            members = group.rows[ca:cb]
            base_i = members[0].inputs.index(members[0].base)
            src_i = [i for i in range(len(members[0].inputs)) if i != base_i][m]
            base = torch.stack([r.sources[base_i].to(group.compute) for r in members])
            source = torch.stack([r.sources[src_i].to(group.compute) for r in members])
        ranks = stack_ranks(base, source, kind)
        group.ranks[(ci, m)] = ranks
        return ranks

    def clear(self) -> None:
        """Forget plans and cached ranks (their memory goes back to the allocator)."""
        self._plans.clear()


def row_values(
    kind: GTAKind | None,
    compute: torch.dtype,
    shape: torch.Size,
    inputs: tuple[Any, ...],
    base: Any,
    params: list[tuple[dict[str, Any], dict[Any, dict[str, Any]]]],
    pack: Pack,
) -> dict[str, Any]:
    """The per-row values of a run of rows (each row's (shared, per-input) parameters),
    registered with ``pack``; host-side checks (DELLA's epsilon) raise here, before any merge.
    ``kind`` None: ``linear``."""
    first_shared = params[0][0]
    numel = shape.numel()
    if kind is None:  # linear: MergeKit's coefficient tensor (rows x inputs)
        coeff = torch.float64 if compute == torch.float64 else torch.float32
        w = [[per[m]["weight"] for m in inputs] for _, per in params]
        return {"weight": pack.add(w, coeff), "normalize": bool(first_shared["normalize"])}
    non_base = [m for m in inputs if m != base]
    w = [[per[m]["weight"] for _, per in params] for m in non_base]
    lam = [float(shared["lambda"]) for shared, _ in params]
    out: dict[str, Any] = {
        "weight": pack.add(w, compute),
        "lam": pack.add(lam, opmath_dtype(compute)) if any(x != 1 for x in lam) else None,
        "normalize": bool(first_shared["normalize"]),
        "rescale": bool(first_shared["rescale"]),
        "int8_mask": bool(first_shared["int8_mask"]),
    }
    dens = [[float(per[m]["density"]) for _, per in params] for m in non_base]
    sp = kind.sparsification
    if sp in ("magnitude", "magnitude_outliers"):
        if sp == "magnitude":
            cuts = [[magnitude_cuts(d, numel) for d in row] for row in dens]
        else:
            gam = [[float(per[m]["gamma"]) for _, per in params] for m in non_base]
            cuts = [
                [outlier_cuts(d, g, numel) for d, g in zip(dr, gr, strict=True)]
                for dr, gr in zip(dens, gam, strict=True)
            ]
        out["cut_lo"] = pack.add([[c[0] for c in row] for row in cuts], torch.int64)
        out["cut_hi"] = pack.add([[c[1] for c in row] for row in cuts], torch.int64)
        if sp == "magnitude" and any(d <= 0 for row in dens for d in row):
            out["zero"] = pack.add([[d <= 0 for d in row] for row in dens], torch.bool)
    elif sp == "random":
        wd = work_dtype(compute, pack.device)
        if any(d < 0 for row in dens for d in row):
            raise ValueError("density must be >= 0 for random (DARE) sparsification")
        # the keep probability torch.bernoulli sees: density rounded to the work dtype
        prob = [[min(d, 1.0) for d in row] for row in dens]
        out["prob"] = pack.add(torch.tensor(prob, dtype=wd).float().tolist(), torch.float32)
    elif sp == "della_magprune":
        eps = [[float(per[m]["epsilon"]) for _, per in params] for m in non_base]
        for dr, er in zip(dens, eps, strict=True):
            for d, e in zip(dr, er, strict=True):
                check_della(d, e)
        om = opmath_dtype(work_dtype(compute, pack.device))
        pairs = zip(dens, eps, strict=True)
        lo = [[d - e for d, e in zip(dr, er, strict=True)] for dr, er in pairs]
        out["della_lo"] = pack.add(lo, om)
        out["della_eps"] = pack.add(eps, om)
        if any(d >= 1 for row in dens for d in row):
            out["keep"] = pack.add([[d >= 1 for d in row] for row in dens], torch.bool)
        if any(d <= 0 for row in dens for d in row):
            out["zero"] = pack.add([[d <= 0 for d in row] for row in dens], torch.bool)
    return out


def gta_rows(bound: dict[str, Any]) -> GTARows:
    """:class:`GTARows` of :func:`row_values`' output once bound to device tensors."""
    return GTARows(
        weight=bound["weight"],
        lam=bound.get("lam"),
        cut_lo=bound.get("cut_lo"),
        cut_hi=bound.get("cut_hi"),
        prob=bound.get("prob"),
        della_lo=bound.get("della_lo"),
        della_eps=bound.get("della_eps"),
        keep=bound.get("keep"),
        zero=bound.get("zero"),
        normalize=bound["normalize"],
        rescale=bound["rescale"],
        int8_mask=bound["int8_mask"],
    )


def stack_ranks(base: torch.Tensor, source: torch.Tensor, kind: str) -> torch.Tensor:
    out = [flat_ranks(s - b, kind) for b, s in zip(base.unbind(0), source.unbind(0), strict=True)]
    if kind == "row":
        return torch.stack(out)
    return torch.stack(out).reshape(base.shape[0], -1)


def _per_input(task: Any) -> dict[Any, dict[str, Any]]:
    return {m: dict(p.items()) for m, p in task.input_parameters.items()}


def _same_params(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for (sa, pa), (sb, pb) in zip(a, b, strict=True):
        if dict(sa) != dict(sb) or {m: dict(v) for m, v in pa.items()} != pb:
            return False
    return True


def _runs(params: list, method: str) -> list[tuple[int, int]]:
    """Consecutive rows whose shared switches agree (a kernel call takes one value of each)."""
    keys = ("normalize",) if method == "linear" else ("normalize", "rescale", "int8_mask")

    def switch(p: Any) -> tuple:
        return tuple(bool(p[0].get(k)) for k in keys)

    out: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(params) + 1):
        if i == len(params) or switch(params[i]) != switch(params[start]):
            out.append((start, i))
            start = i
    return out


def _copy_rows(dest: list[torch.Tensor], out: torch.Tensor) -> None:
    """Every row of ``out`` into its tensor of the working model, one multi-tensor copy."""
    src = list(out.unbind(0))
    try:
        torch._foreach_copy_(dest, src)
    except (RuntimeError, AttributeError, TypeError):  # mixed dtypes or devices: one by one
        for d, s in zip(dest, src, strict=True):
            d.copy_(s)


class Pack:
    """Every per-row number of one merge, sent to the device in one copy (no sync)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.parts: list[torch.Tensor] = []
        self.slots: list[tuple[int, int, torch.dtype, tuple[int, ...]]] = []
        self.offset = 0
        self.base: torch.Tensor | None = None

    def add(self, values: Any, dtype: torch.dtype) -> int:
        t = torch.tensor(values, dtype=dtype)
        raw = t.reshape(-1).view(torch.uint8) if t.numel() else torch.empty(0, dtype=torch.uint8)
        pad = (-self.offset) % 8
        if pad:
            self.parts.append(torch.zeros(pad, dtype=torch.uint8))
            self.offset += pad
        self.slots.append((self.offset, raw.numel(), dtype, tuple(t.shape)))
        self.parts.append(raw)
        self.offset += raw.numel()
        return len(self.slots) - 1

    def send(self, owner: BatchedMerger | None = None) -> None:
        host = torch.cat(self.parts) if self.parts else torch.empty(0, dtype=torch.uint8)
        if self.device.type == "cuda" and owner is not None:
            staging = owner._staging
            if staging is None or staging.numel() < host.numel():
                staging = owner._staging = torch.empty(
                    max(host.numel(), 1 << 16), dtype=torch.uint8, pin_memory=True
                )
            if owner._staged is not None:  # the last merge's copy out of it (long done)
                owner._staged.synchronize()
            staging[: host.numel()].copy_(host)
            self.base = staging[: host.numel()].to(self.device, non_blocking=True)
            owner._staged = torch.cuda.Event()
            owner._staged.record(torch.cuda.current_stream(self.device))
        else:
            self.base = host.to(self.device)

    def get(self, slot: int) -> torch.Tensor:
        assert self.base is not None
        off, n, dtype, shape = self.slots[slot]
        return self.base[off : off + n].view(dtype).reshape(shape)

    def bind(self, rows: dict[str, Any]) -> dict[str, Any]:
        return {
            k: (self.get(v) if isinstance(v, int) and not isinstance(v, bool) else v)
            for k, v in rows.items()
        }
