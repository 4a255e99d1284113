"""Batched greedy decoding over a :class:`LayerStack`, close to the hardware.

What makes it fast, compared with ``model.generate`` behind lm-eval's ``hf`` model:

- a static KV cache, allocated once per decoder and reused by every batch and candidate;
- one decode step captured as a CUDA graph per (batch bucket, cache length) and replayed, so a
  step costs a graph launch instead of ~15 kernel launches per layer from Python; weights
  changed in place (the resident PS builder) are read by the same graph, so the capture is
  paid once per search, not per candidate;
- the few-shot prefix every row of a batch shares is computed once and copied to every row;
- rows that finished (EOS or a stop string, checked every ``check_every`` steps) are retired:
  the batch is compacted into a smaller bucket, and decoding ends when every row is done.

Layout: no left padding.  Row ``r`` keeps its context at cache slots ``0 .. L_r - 1`` with
position ids ``0 .. L_r - 1`` (what ``generate`` gives left-padded rows), then its generated
tokens; a boolean mask per row hides the slots it has not written.  Each *position* of the
stack has its own cache slot, so a layer used twice on a DFS path keeps two caches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mergekit_evo.engine.stack import LayerStack, UnsupportedModel

log = logging.getLogger(__name__)


class NonFiniteLogits(RuntimeError):
    """The model's logits hold NaN or inf: broken weights, not a number to score."""


def _finite(logits: torch.Tensor) -> torch.Tensor:
    if not bool(torch.isfinite(logits).all()):
        raise NonFiniteLogits(
            "the model produced non-finite logits (NaN or inf): its weights are broken"
        )
    return logits


#: a row may stop once this says so: (row index, tokens generated so far) -> done
IsDone = Callable[[int, list[int]], bool]

_SLOT_ROUND = 256  # cache lengths are bucketed to multiples of this (one graph per bucket)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """``apply_rotary_pos_emb`` of the Llama family (cos/sin: batch, seq, head_dim)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def _bucket(n: int, cap: int) -> int:
    b = 1
    while b < n:
        b *= 2
    return min(b, cap) if cap >= n else b


@dataclass
class _StepGraph:
    """Static inputs/outputs of one decode step, and its CUDA graph (None on CPU)."""

    tok: torch.Tensor  # (B,) last token of each row
    pos: torch.Tensor  # (B,) cache slot = position id of ``tok``
    slots: int  # cache length the step attends over
    graph: torch.cuda.CUDAGraph | None = None


@dataclass
class DecodeStats:
    """What the last :meth:`GreedyDecoder.generate` calls did (for benchmarks and logs)."""

    prefill_tokens: int = 0
    shared_prefix_tokens: int = 0
    decode_steps: int = 0
    graph_captures: int = 0
    compactions: int = 0
    rows: int = 0
    prefill_s: float = 0.0  # wall time to the first token (synchronised)
    decode_s: float = 0.0  # wall time of the decode loop, host checks included
    check_s: float = 0.0  # of which: host-side stop checks (decode + string search)


class GreedyDecoder:
    """Greedy continuation of token prompts through one layer stack."""

    def __init__(
        self,
        stack: LayerStack,
        *,
        max_batch: int,
        use_graphs: bool | None = None,
        check_every: int = 8,
        min_shared_prefix: int = 64,
        fuse: bool | None = None,
    ) -> None:
        """``fuse``: decode with :mod:`.fused`'s compiled layer functions (None: on CUDA)."""
        self.stack = stack
        # a shorter shared prefix is prefilled with the rest of its row: computing it apart
        # would make the rows' prefill a masked (non-flash) attention, which costs more
        self.min_shared_prefix = max(1, int(min_shared_prefix))
        self.device = stack.device
        self.dtype = stack.dtype
        self.max_batch = max(1, int(max_batch))
        self.use_graphs = self.device.type == "cuda" if use_graphs is None else use_graphs
        self.check_every = max(1, int(check_every))
        self.stats = DecodeStats()
        self._k: torch.Tensor | None = None  # (positions, batch, kv heads, slots, head dim)
        self._v: torch.Tensor | None = None
        self._steps: dict[tuple[int, int], _StepGraph] = {}
        self._pool = None
        self._fused = None
        if self.device.type == "cuda" if fuse is None else fuse:
            from mergekit_evo.engine.fused import FusedLayers

            try:
                self._fused = FusedLayers(stack.layers, compile=self.device.type == "cuda")
            except ValueError:
                self._fused = None  # not the plain shape: the modules' own forward

    # ----------------------------------------------------------------------------- public
    @torch.no_grad()
    def generate(
        self, prompts: Sequence[Sequence[int]], max_new_tokens: int, is_done: IsDone
    ) -> list[list[int]]:
        """Greedy tokens after each prompt, until ``is_done`` or ``max_new_tokens``."""
        out: list[list[int]] = []
        for start in range(0, len(prompts), self.max_batch):
            chunk = [list(p) for p in prompts[start : start + self.max_batch]]
            done = (lambda off: lambda r, toks: is_done(off + r, toks))(start)
            out.extend(self._generate_batch(chunk, max_new_tokens, done))
        return out

    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Full-sequence logits (batch, seq, vocab) with plain causal attention, no cache."""
        st = self.stack
        b, t = input_ids.shape
        pos = torch.arange(t, device=self.device).expand(b, t)
        h = st.embed(input_ids.to(self.device))
        cos, sin = st.rotary(h, pos)
        mask = None  # causal
        for layer, scale in zip(st.layers, st.scales, strict=True):
            h = self._layer(layer, h, scale, cos, sin, mask, lambda k, v: (k, v))
        return _finite(st.head(st.norm(h)))

    # ----------------------------------------------------------------------------- batches
    def _generate_batch(
        self, prompts: list[list[int]], max_new: int, is_done: IsDone
    ) -> list[list[int]]:
        n = len(prompts)
        if n == 0 or max_new <= 0:
            return [[] for _ in prompts]
        if any(len(p) == 0 for p in prompts):
            raise ValueError("empty prompt: the engine needs at least one context token")
        lengths = [len(p) for p in prompts]
        need = max(lengths) + max_new + 1  # +1: the last slot is scratch for graph warm-up
        window = self.stack.max_context()
        if window is not None and need - 1 > window:
            raise UnsupportedModel(f"sequence of {need - 1} tokens exceeds sliding window {window}")
        slots = -(-need // _SLOT_ROUND) * _SLOT_ROUND
        bsz = _bucket(n, self.max_batch)
        self._ensure_cache(bsz, slots)
        step = self._step_graph(bsz, slots)  # capture before prefill: warm-up writes scratch
        rows = prompts + [prompts[0]] * (bsz - n)  # bucket filler rows repeat row 0
        t0 = time.perf_counter()
        first = self._prefill(rows, slots)
        first_host = first.tolist()  # sync: the prefill's time ends here
        t1 = time.perf_counter()
        self.stats.prefill_s += t1 - t0
        self.stats.rows += n

        gen: list[list[int]] = [[] for _ in range(n)]
        finished = [False] * n
        rowmap = list(range(n)) + [-1] * (bsz - n)  # batch row -> prompt index (-1: filler)
        step.tok.copy_(first)
        step.pos.copy_(torch.tensor([len(r) for r in rows], device=self.device))
        history: list[torch.Tensor] = []  # (bsz,) tokens per step since the last check
        for b, orig in enumerate(rowmap):
            if orig >= 0:
                gen[orig].append(first_host[b])
                finished[orig] = max_new <= 1 or is_done(orig, gen[orig])
        produced = 1
        while True:
            if produced % self.check_every == 0 or produced >= max_new:
                toks = torch.stack(history, dim=1).tolist() if history else []  # host sync
                history.clear()
                tc = time.perf_counter()
                for b, orig in enumerate(rowmap):
                    if orig < 0 or finished[orig]:
                        continue
                    if toks:
                        gen[orig].extend(toks[b])
                    if len(gen[orig]) >= max_new or is_done(orig, gen[orig]):
                        finished[orig] = True
                self.stats.check_s += time.perf_counter() - tc
                live = [r for r in rowmap if r >= 0 and not finished[r]]
                if not live:
                    break
                if len(live) <= bsz // 2:
                    step = self._compact(step, rowmap, live, slots)
                    bsz = step.tok.shape[0]
                    rowmap = live + [-1] * (bsz - len(live))
            self._run(step)
            history.append(step.tok.clone())
            produced += 1
            self.stats.decode_steps += 1
        self.stats.decode_s += time.perf_counter() - t1
        return [g[:max_new] for g in gen]

    def _compact(
        self, step: _StepGraph, rowmap: list[int], live: list[int], slots: int
    ) -> _StepGraph:
        """Retire finished rows: move the live ones into the first rows of a smaller bucket."""
        new_bsz = _bucket(len(live), self.max_batch)
        where = {orig: b for b, orig in enumerate(rowmap)}
        idx = [where[r] for r in live] + [where[live[0]]] * (new_bsz - len(live))
        ix = torch.tensor(idx, device=self.device)
        assert self._k is not None and self._v is not None
        self._k[:, :new_bsz, :, :slots] = self._k[:, ix, :, :slots]
        self._v[:, :new_bsz, :, :slots] = self._v[:, ix, :, :slots]
        tok, pos = step.tok[ix].clone(), step.pos[ix].clone()
        new_step = self._step_graph(new_bsz, slots)
        new_step.tok.copy_(tok)
        new_step.pos.copy_(pos)
        self.stats.compactions += 1
        return new_step

    # ----------------------------------------------------------------------------- cache
    def _ensure_cache(self, bsz: int, slots: int) -> None:
        st = self.stack
        have = self._k
        if have is not None and have.shape[1] >= bsz and have.shape[3] >= slots:
            return
        b = max(bsz, have.shape[1] if have is not None else 0)
        s = max(slots, have.shape[3] if have is not None else 0)
        self._k = self._v = None
        self._steps.clear()  # graphs point into the old cache
        shape = (len(st.layers), b, st.num_kv_heads, s, st.head_dim)
        self._k = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self._v = torch.zeros(shape, dtype=self.dtype, device=self.device)

    def _prefill(self, rows: list[list[int]], slots: int) -> torch.Tensor:
        """Context into the cache (shared prefix once); returns each row's first new token."""
        assert self._k is not None and self._v is not None
        st, dev = self.stack, self.device
        bsz = len(rows)
        shared = _common_prefix(rows)
        shared = min(shared, min(len(r) for r in rows) - 1)  # every row keeps a suffix token
        if shared < self.min_shared_prefix:
            shared = 0
        if shared > 0:
            ids = torch.tensor([rows[0][:shared]], device=dev)
            self._forward_into(ids, start=0, bsz=1)
            self._k[:, 1:bsz, :, :shared] = self._k[:, :1, :, :shared]
            self._v[:, 1:bsz, :, :shared] = self._v[:, :1, :, :shared]
        width = max(len(r) for r in rows) - shared
        suffix = torch.zeros(bsz, width, dtype=torch.long)
        last = torch.zeros(bsz, dtype=torch.long)
        for i, r in enumerate(rows):
            tail = r[shared:]
            suffix[i, : len(tail)] = torch.tensor(tail)
            last[i] = len(tail) - 1
        h = self._forward_into(suffix.to(dev), start=shared, bsz=bsz)
        h = h[torch.arange(bsz, device=dev), last.to(dev)]
        self.stats.prefill_tokens += shared + sum(len(r) - shared for r in rows)
        self.stats.shared_prefix_tokens += shared * (bsz - 1)
        return _finite(st.head(st.norm(h))).argmax(-1)  # the host syncs here anyway

    def _forward_into(self, ids: torch.Tensor, *, start: int, bsz: int) -> torch.Tensor:
        """Tokens at slots ``start ..`` of rows ``:bsz``, attending to the slots before them."""
        assert self._k is not None and self._v is not None
        st, dev = self.stack, self.device
        t = ids.shape[1]
        end = start + t
        pos = torch.arange(start, end, device=dev).expand(ids.shape[0], t)
        h = st.embed(ids)
        cos, sin = st.rotary(h, pos)
        mask = None  # from slot 0: plain causal attention (flash); else a mask with an offset
        if start > 0:
            q_pos = torch.arange(start, end, device=dev)[:, None]
            mask = (torch.arange(end, device=dev)[None, :] <= q_pos)[None, None]
        for i, (layer, scale) in enumerate(zip(st.layers, st.scales, strict=True)):
            kc, vc = self._k[i, :bsz], self._v[i, :bsz]

            def kv(k: torch.Tensor, v: torch.Tensor, kc=kc, vc=vc):
                kc[:, :, start:end] = k
                vc[:, :, start:end] = v
                return kc[:, :, :end], vc[:, :, :end]

            h = self._layer(layer, h, scale, cos, sin, mask, kv)
        return h

    # ----------------------------------------------------------------------------- decode step
    def _step_graph(self, bsz: int, slots: int) -> _StepGraph:
        key = (bsz, slots)
        step = self._steps.get(key)
        if step is not None:
            return step
        dev = self.device
        step = _StepGraph(
            tok=torch.zeros(bsz, dtype=torch.long, device=dev),
            pos=torch.zeros(bsz, dtype=torch.long, device=dev),
            slots=slots,
        )
        if self.use_graphs:
            step.pos.fill_(slots - 1)  # warm-up and capture write only the scratch slot
            side = torch.cuda.Stream(device=dev)
            side.wait_stream(torch.cuda.current_stream(dev))
            with torch.cuda.stream(side):
                for _ in range(2):  # the first call also compiles the fused layer functions
                    try:
                        self._decode(step, bsz, slots)
                    except Exception as err:  # noqa: BLE001 - any compiler failure: go eager
                        if self._fused is None:
                            raise
                        log.warning("fused decode failed (%s); decoding eagerly", err)
                        self._fused = None
                        self._decode(step, bsz, slots)
                    step.pos.fill_(slots - 1)
            torch.cuda.current_stream(dev).wait_stream(side)
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                self._decode(step, bsz, slots)
            step.graph = graph
            self.stats.graph_captures += 1
        self._steps[key] = step
        return step

    def _run(self, step: _StepGraph) -> None:
        if step.graph is not None:
            step.graph.replay()
        else:
            self._decode(step, step.tok.shape[0], step.slots)

    def _decode(self, step: _StepGraph, bsz: int, slots: int) -> None:
        """One token for every row: reads ``tok``/``pos``, writes the next ``tok``, ``pos + 1``."""
        assert self._k is not None and self._v is not None
        st, dev = self.stack, self.device
        rows = torch.arange(bsz, device=dev)
        pos = step.pos
        h = st.embed(step.tok[:, None])
        cos, sin = st.rotary(h, pos[:, None])
        mask = (torch.arange(slots, device=dev)[None, :] <= pos[:, None])[:, None, None, :]
        fused = self._fused
        for i, (layer, scale) in enumerate(zip(st.layers, st.scales, strict=True)):
            kc, vc = self._k[i, :bsz, :, :slots], self._v[i, :bsz, :, :slots]
            if fused is not None:
                w = fused.tensors[i]
                if scale != 1.0:
                    h = h * scale
                q, k, v = fused.pre(h, w.ln1, w.wq, w.bq, w.wk, w.bk, w.wv, w.bv, w.qn, w.kn,
                                    cos, sin, w.eps, w.head_dim)  # fmt: skip
                kc[rows, :, pos] = k[:, :, 0]
                vc[rows, :, pos] = v[:, :, 0]
                o = _attention(q, kc, vc, mask, layer.self_attn.scaling)
                h = fused.post(h, o, w.wo, w.bo, w.ln2, w.wg, w.wu, w.wd, w.eps)
                continue

            def kv(k: torch.Tensor, v: torch.Tensor, kc=kc, vc=vc):
                kc[rows, :, pos] = k[:, :, 0]
                vc[rows, :, pos] = v[:, :, 0]
                return kc, vc

            h = self._layer(layer, h, scale, cos, sin, mask, kv)
        nxt = st.head(st.norm(h[:, -1])).argmax(-1)
        step.tok.copy_(nxt)
        step.pos.add_(1)

    @staticmethod
    def _layer(layer, h, scale, cos, sin, mask, kv):
        """One Llama-family decoder layer (the hidden state entering it scaled by ``scale``)."""
        if scale != 1.0:
            h = h * scale
        attn = layer.self_attn
        x = layer.input_layernorm(h)
        b, t, _ = x.shape
        hd = attn.head_dim
        q = attn.q_proj(x).view(b, t, -1, hd)
        k = attn.k_proj(x).view(b, t, -1, hd)
        v = attn.v_proj(x).view(b, t, -1, hd)
        if hasattr(attn, "q_norm"):  # qwen3
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = _rope(q, k, cos, sin)
        keys, values = kv(k, v)
        o = _attention(q, keys, values, mask, attn.scaling)
        h = h + attn.o_proj(o.transpose(1, 2).reshape(b, t, -1))
        return h + layer.mlp(layer.post_attention_layernorm(h))


def _attention(q, k, v, mask, scale: float) -> torch.Tensor:
    """SDPA with grouped-query heads; ``mask`` None means causal from slot 0.

    A decode step (one query) puts the query heads of each KV group on the query axis, so the
    keys and values are read once per group instead of being repeated for every head.
    """
    b, nh, t, hd = q.shape
    nkv = k.shape[1]
    if t == 1 and mask is not None and nh != nkv:
        g = nh // nkv
        q = q.reshape(b, nkv, g, hd)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        return o.reshape(b, nh, 1, hd)
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=True)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    first = rows[0]
    n = min(len(r) for r in rows)
    for i in range(n):
        t = first[i]
        if any(r[i] != t for r in rows):
            return i
    return n
