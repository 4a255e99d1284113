"""Batched greedy decoding over a :class:`LayerStack`, close to the hardware.

What makes it fast, compared with ``model.generate`` behind lm-eval's ``hf`` model:

- a static KV cache, allocated once per decoder and reused by every batch and candidate;
- one decode step captured as a CUDA graph per (batch bucket, cache length) and replayed, so a
  step costs a graph launch instead of ~15 kernel launches per layer from Python; weights
  changed in place (the resident PS builder) are read by the same graph, so the capture is
  paid once per search, not per candidate;
- fused q/k/v and gate/up products (:mod:`.fused`), and an attention that reads only each
  row's filled slots and writes the new one itself (:mod:`.attention`, Triton; SDPA over the
  masked bucket where Triton is missing or fails its check);
- prefill of length-sorted rows in sub-batches of about ``prefill_tokens`` tokens, so a batch
  pays little padding and the matrix products stay large;
- the few-shot prefix every row of a batch shares is computed once and copied to every row;
- rows that finished (EOS or a stop string, checked every ``check_every`` steps) are retired:
  the batch is compacted into a smaller bucket, and decoding ends when every row is done.  The
  host checks one interval's tokens while the device runs the next, so they cost no device time
  (a finished row decodes at most one interval more; its extra tokens are dropped).

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
    prefill_flops: float = 0.0  # useful matrix FLOPs of the prefills (no padding, causal)
    prefill_batches: int = 0  # sub-batches the prefills ran in
    prefill_padded_tokens: int = 0  # tokens computed by them, padding included
    attention: str = ""  # decode attention: "triton" or "sdpa"


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
        attention: str | None = None,
        prefill_tokens: int = 32768,
        compile: bool | str | None = None,
    ) -> None:
        """``fuse``: decode with :mod:`.fused`'s layer functions (None: on CUDA).
        ``compile``: run them through ``torch.compile`` (None: on CUDA; a string names the
        backend, e.g. ``eager`` for CPU tests of Dynamo's guards).  ``attention``: ``triton``
        or ``sdpa`` for fused decode steps (None: Triton if it runs here and agrees with
        SDPA).  ``prefill_tokens``: padded tokens per prefill sub-batch."""
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
        self.prefill_tokens = max(1, int(prefill_tokens))
        self._hist: torch.Tensor | None = None  # (batch, check_every) tokens of one interval
        self._host: list[torch.Tensor] = []  # two (pinned) host copies of it, alternating
        if self.device.type == "cuda" if fuse is None else fuse:
            from mergekit_evo.engine.fused import FusedLayers

            if compile is None:
                compile = self.device.type == "cuda"
            backend = compile if isinstance(compile, str) else "inductor"
            try:
                self._fused = FusedLayers(stack.layers, compile=bool(compile), backend=backend)
            except ValueError:
                self._fused = None  # not the plain shape: the modules' own forward
        self.attention = "sdpa"
        if self._fused is not None and attention != "sdpa":
            from mergekit_evo.engine.attention import usable

            t = self._fused.tensors[0]
            if attention == "triton" or usable(self.device, self.dtype, t.n_q, t.n_kv, t.head_dim):
                self.attention = "triton"
        self.stats.attention = self.attention

    # ----------------------------------------------------------------------------- public
    @torch.no_grad()
    def generate(
        self, prompts: Sequence[Sequence[int]], max_new_tokens: int, is_done: IsDone
    ) -> list[list[int]]:
        """Greedy tokens after each prompt, until ``is_done`` or ``max_new_tokens``."""
        if self._fused is not None and self._fused.refresh():
            self._steps.clear()  # a layer was fused again: graphs hold the old buffers
        out: list[list[int]] = []
        for start in range(0, len(prompts), self.max_batch):
            chunk = [list(p) for p in prompts[start : start + self.max_batch]]
            order = sorted(range(len(chunk)), key=lambda i: -len(chunk[i]))  # longest first
            done = _renumbered(is_done, [start + i for i in order])
            got = self._generate_batch([chunk[i] for i in order], max_new_tokens, done)
            back: list[list[int]] = [[] for _ in chunk]
            for j, i in enumerate(order):
                back[i] = got[j]
            out.extend(back)
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
        t0 = time.perf_counter()
        first = self._prefill(prompts, slots)  # bucket filler rows are not prefilled
        first_host = first.tolist()  # sync: the prefill's time ends here
        t1 = time.perf_counter()
        self.stats.prefill_s += t1 - t0
        self.stats.rows += n

        gen: list[list[int]] = [[] for _ in range(n)]
        finished = [False] * n
        rowmap = list(range(n)) + [-1] * (bsz - n)  # batch row -> prompt index (-1: filler)
        step.tok.zero_()
        step.tok[:n].copy_(first)
        pos0 = lengths + [0] * (bsz - n)  # fillers decode from slot 0, harmlessly
        step.pos.copy_(torch.tensor(pos0, device=self.device))
        for b in range(n):
            gen[b].append(first_host[b])
            finished[b] = max_new <= 1 or is_done(b, gen[b])

        def drain(snap: tuple) -> None:
            """An interval's tokens, on the host once its copy is done: extend, check."""
            event, host, rmap = snap
            if event is not None:
                event.synchronize()
            toks = host.tolist()
            tc = time.perf_counter()
            for b, orig in enumerate(rmap):
                if orig < 0 or finished[orig]:
                    continue
                gen[orig].extend(toks[b])
                if len(gen[orig]) >= max_new or is_done(orig, gen[orig]):
                    finished[orig] = True
            self.stats.check_s += time.perf_counter() - tc

        produced = 1
        pending = None  # the last interval launched, not yet checked
        flip = 0
        while True:
            live = [r for r in rowmap if r >= 0 and not finished[r]]
            every = self.check_every  # intervals end where ``produced`` is a multiple of it
            steps = min(every - produced % every, max_new - produced)
            if not live or steps <= 0:
                if pending is None:
                    break
                drain(pending)
                pending = None
                continue
            if len(live) <= bsz // 2:
                step = self._compact(step, rowmap, live, slots)
                bsz = step.tok.shape[0]
                rowmap = live + [-1] * (bsz - len(live))
            hist = self._interval(bsz, steps)
            for j in range(steps):
                self._run(step)
                hist[:, j].copy_(step.tok)
            produced += steps
            self.stats.decode_steps += steps
            snap = self._snapshot(hist, flip, list(rowmap))
            flip ^= 1
            if pending is not None:
                drain(pending)  # checked while the device runs the interval just launched
            pending = snap
        self.stats.decode_s += time.perf_counter() - t1
        return [g[:max_new] for g in gen]

    def _interval(self, bsz: int, steps: int) -> torch.Tensor:
        """A (bsz, steps) device buffer for one interval's tokens."""
        need = self.max_batch * self.check_every
        if self._hist is None or self._hist.numel() < need:
            self._hist = torch.empty(need, dtype=torch.long, device=self.device)
            pin = self.device.type == "cuda"
            self._host = [torch.empty(need, dtype=torch.long, pin_memory=pin) for _ in range(2)]
        return self._hist[: bsz * steps].view(bsz, steps)

    def _snapshot(self, hist: torch.Tensor, flip: int, rmap: list[int]) -> tuple:
        """Start copying an interval's tokens to the host; (event, host view, row map)."""
        host = self._host[flip][: hist.numel()].view(hist.shape)
        if self.device.type != "cuda":
            host.copy_(hist)
            return None, host, rmap
        host.copy_(hist, non_blocking=True)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        return event, host, rmap

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
        """Context into the cache (shared prefix once); returns each row's first new token.

        ``rows`` are sorted longest first, so consecutive rows make sub-batches of similar
        length: each is padded to its own longest row and holds about ``prefill_tokens``.
        """
        assert self._k is not None and self._v is not None
        st, dev = self.stack, self.device
        n = len(rows)
        shared = _common_prefix(rows)
        shared = min(shared, min(len(r) for r in rows) - 1)  # every row keeps a suffix token
        if shared < self.min_shared_prefix:
            shared = 0
        spans: list[tuple[int, int, int]] = []  # (first row, end row, width)
        a = 0
        while a < n:
            width = len(rows[a]) - shared
            b = min(n, a + max(1, self.prefill_tokens // width))
            spans.append((a, b, width))
            a = b
        # every sub-batch's ids and last positions in one host-to-device copy
        flat = torch.zeros(
            sum((b - a) * w + (b - a) for a, b, w in spans) + shared, dtype=torch.long
        )
        off = 0
        views = []
        for a, b, w in spans:
            ids = flat[off : off + (b - a) * w].view(b - a, w)
            last = flat[off + (b - a) * w : off + (b - a) * (w + 1)]
            for i, r in enumerate(rows[a:b]):
                tail = r[shared:]
                ids[i, : len(tail)] = torch.tensor(tail)
                last[i] = len(tail) - 1
            views.append((off, b - a, w))
            off += (b - a) * (w + 1)
        if shared:
            flat[off:] = torch.tensor(rows[0][:shared])
        flat = flat.to(dev)
        if shared > 0:
            self._forward_into(flat[off:].view(1, shared), start=0, r0=0, r1=1)
            self._k[:, 1:n, :, :shared] = self._k[:, :1, :, :shared]
            self._v[:, 1:n, :, :shared] = self._v[:, :1, :, :shared]
        hs = []
        for (a, b, w), (o, k, _) in zip(spans, views, strict=True):
            ids = flat[o : o + k * w].view(k, w)
            last = flat[o + k * w : o + k * (w + 1)]
            h = self._forward_into(ids, start=shared, r0=a, r1=b)
            hs.append(h[torch.arange(k, device=dev), last])
            self.stats.prefill_batches += 1
            self.stats.prefill_padded_tokens += k * w
        h = torch.cat(hs) if len(hs) > 1 else hs[0]
        self.stats.prefill_tokens += shared + sum(len(r) - shared for r in rows)
        self.stats.shared_prefix_tokens += shared * (n - 1)
        self.stats.prefill_flops += self._prefill_flops(rows, shared)
        return _finite(st.head(st.norm(h))).argmax(-1)  # the host syncs here anyway

    def _prefill_flops(self, rows: list[list[int]], shared: int) -> float:
        """Matrix FLOPs a prefill of ``rows`` must do: projections per token, causal attention
        per row, the head on each row's last token (for the benchmark's rate)."""
        weights = 0
        attn = 0
        for layer in self.stack.layers:
            weights += sum(
                m.weight.numel()
                for m in (*[getattr(layer.self_attn, n) for n in ("q_proj", "k_proj", "v_proj",
                          "o_proj")], layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj)
            )  # fmt: skip
            attn += layer.self_attn.q_proj.out_features  # heads x head dim
        tokens = [len(r) - shared for r in rows] + ([shared] if shared else [])
        head = self.stack.head.weight.numel()
        return float(sum(2 * weights * t + 2 * attn * t * t for t in tokens) + 2 * head * len(rows))

    def _forward_into(self, ids: torch.Tensor, *, start: int, r0: int, r1: int) -> torch.Tensor:
        """Tokens at slots ``start ..`` of rows ``r0:r1``, attending to the slots before them."""
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
        fused = self._fused
        for i, (layer, scale) in enumerate(zip(st.layers, st.scales, strict=True)):
            kc, vc = self._k[i, r0:r1], self._v[i, r0:r1]
            if fused is not None:  # one q/k/v and one gate/up product (compiled on CUDA)
                w = fused.tensors[i]
                if scale != 1.0:
                    h = h * scale
                q, k, v = fused.pre(h, w, cos, sin)
                kc[:, :, start:end] = k.transpose(1, 2)
                vc[:, :, start:end] = v.transpose(1, 2)
                o = _attention(q.transpose(1, 2), kc[:, :, :end], vc[:, :, :end], mask,
                               layer.self_attn.scaling)  # fmt: skip
                h = fused.post(h, o.transpose(1, 2), w)
                continue

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
                    self._decode_or_fall_back(step, bsz, slots)
                    step.pos.fill_(slots - 1)
            torch.cuda.current_stream(dev).wait_stream(side)
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            try:
                graph = self._capture(step, bsz, slots)
            except Exception as err:  # noqa: BLE001 - a kernel that will not capture: SDPA
                if self._fused is None or self.attention != "triton":
                    raise
                log.warning("capturing the Triton decode step failed (%s); using SDPA", err)
                self.attention = self.stats.attention = "sdpa"
                torch.cuda.synchronize(dev)
                step.pos.fill_(slots - 1)
                self._decode(step, bsz, slots)
                step.pos.fill_(slots - 1)
                graph = self._capture(step, bsz, slots)
            step.graph = graph
            self.stats.graph_captures += 1
        self._steps[key] = step
        return step

    def _capture(self, step: _StepGraph, bsz: int, slots: int) -> torch.cuda.CUDAGraph:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            self._decode(step, bsz, slots)
        return graph

    def _decode_or_fall_back(self, step: _StepGraph, bsz: int, slots: int) -> None:
        """A warm-up step; a failure of Triton, then of the compiled layers, drops that part."""
        while True:
            try:
                self._decode(step, bsz, slots)
                return
            except Exception as err:  # noqa: BLE001 - any compiler or launch failure
                if self._fused is not None and self.attention == "triton":
                    log.warning("Triton decode attention failed (%s); using SDPA", err)
                    self.attention = self.stats.attention = "sdpa"
                elif self._fused is not None:
                    log.warning("fused decode failed (%s); decoding eagerly", err)
                    self._fused = None
                else:
                    raise
                step.pos.fill_(slots - 1)

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
        fused = self._fused
        triton = fused is not None and self.attention == "triton"
        mask = None
        if triton:
            from mergekit_evo.engine.attention import decode_attention
        else:
            mask = (torch.arange(slots, device=dev)[None, :] <= pos[:, None])[:, None, None, :]
        for i, (layer, scale) in enumerate(zip(st.layers, st.scales, strict=True)):
            kc, vc = self._k[i, :bsz, :, :slots], self._v[i, :bsz, :, :slots]
            if fused is not None:
                w = fused.tensors[i]
                if scale != 1.0:
                    h = h * scale
                q, k, v = fused.pre(h, w, cos, sin)
                if triton:  # writes slot ``pos`` and reads only slots <= pos
                    o = decode_attention(q[:, 0], k[:, 0], v[:, 0], kc, vc, pos,
                                         layer.self_attn.scaling)[:, None]  # fmt: skip
                else:
                    kc[rows, :, pos] = k[:, 0]
                    vc[rows, :, pos] = v[:, 0]
                    o = _attention(q.transpose(1, 2), kc, vc, mask, layer.self_attn.scaling)
                    o = o.transpose(1, 2)
                h = fused.post(h, o, w)
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


def _renumbered(is_done: IsDone, index: list[int]) -> IsDone:
    """``is_done`` for rows renumbered: row ``r`` here is row ``index[r]`` of the caller."""
    return lambda r, toks: is_done(index[r], toks)


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    first = rows[0]
    n = min(len(r) for r in rows)
    for i in range(n):
        t = first[i]
        if any(r[i] != t for r in rows):
            return i
    return n
