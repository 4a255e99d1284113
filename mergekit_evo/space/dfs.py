"""Data-flow-space (DFS) genome: the indicator array I and the scale matrix W.

Layout (paper, Sec. 3.2): M = total layers of all DFS models, laid out all of model A, then
B, ...; repeated r times gives T = M * r slots; slot t is on the inference path iff I[t] > 0.
W[i][j] scales the hidden state entering layer j from layer i: ``full`` evolves all M x M
entries, ``compact`` one per model pair (n x n), ``shared`` one number for every cross-model
jump (within-model jumps stay 1).  Coordinates not evolved (``evolve: indicators|scales``,
slots outside ``window``) keep their initial value.

Initialisation of I (``init_indicators``): ``paper`` (quoted, not read from the PDF) is zero
except model A's first-repetition slots, which start at 2 * sigma.  Zero is the on/off threshold,
so CMA-ES's first generations switch each other slot on with probability 1/2: the search starts
from random long paths, not from A.  ``model_a`` (the default) puts those other slots at
-2 * sigma instead, so the start point is model A's own path unambiguously (each slot flips with
probability ~2% per sample) - on the planted benchmark this is what lets DFS recover the path.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from mergekit_evo.config import ConfigError, DFSConfig, SearchConfig, num_layers
from mergekit_evo.space.vector import Dim, VectorSpace


class DFSSpace:
    """Vector <-> ``dfs`` recipe over a fixed list of models."""

    name = "dfs"

    def __init__(
        self,
        model_paths: list[str],
        layer_counts: list[int],
        dfs: DFSConfig,
        sigma0: float,
        cma: bool,
        seed: int = 0,
        dtype: str = "float32",
        labels: list[str] | None = None,
        start_slots: list[int] | None = None,
        head: int = 0,
        tokenizer_source: str | None = None,
    ) -> None:
        self.model_paths = model_paths
        self.head = head  # index of the model giving the final norm and lm_head (0: model A)
        self.tokenizer_source = tokenizer_source
        self.labels = labels or [os.path.basename(p.rstrip("/")) or p for p in model_paths]
        self.layer_counts = layer_counts
        self.cfg = dfs
        self.dtype = dtype
        self.M = sum(layer_counts)
        self.T = self.M * dfs.repeats
        n = len(model_paths)
        self.owner = np.repeat(np.arange(n), layer_counts)  # model index of each of the M layers
        rng = np.random.default_rng(seed)
        ilo, ihi = dfs.indicator_bounds
        slo, shi = dfs.scale_bounds
        two_sigma = 2 * sigma0 * (ihi - ilo)

        # initial I
        if dfs.init_indicators in ("paper", "model_a"):
            i0 = np.zeros(self.T) if dfs.init_indicators == "paper" else np.full(self.T, -two_sigma)
            i0[: layer_counts[0]] = two_sigma
        elif dfs.init_indicators == "all":
            i0 = np.full(self.T, two_sigma)
        elif dfs.init_indicators == "uniform":
            i0 = rng.uniform(ilo, ihi, self.T)
        else:
            i0 = rng.normal(0.0, sigma0 * (ihi - ilo), self.T)
        if start_slots is not None:  # a given path (dfs.start_path): on at +2 sigma, off at -2
            i0 = np.full(self.T, -two_sigma)
            i0[start_slots] = two_sigma
        self.i0 = np.clip(i0, ilo, ihi)

        # initial W (in the evolved shape)
        shape = {"full": (self.M, self.M), "compact": (n, n), "shared": (1,)}[dfs.scales]
        if dfs.init_scales == "ones":
            w0 = np.ones(shape)
        elif dfs.init_scales == "random":
            w0 = rng.uniform(slo, shi, shape)
        else:  # identity: 1 within a model, 0 across models
            if dfs.scales == "full":
                w0 = (self.owner[:, None] == self.owner[None, :]).astype(float)
            elif dfs.scales == "compact":
                w0 = np.eye(n)
            else:
                w0 = np.zeros(1)
        self.w0 = np.clip(w0, slo, shi)

        win = dfs.window or (0, self.T)
        self.window = (win[0], min(win[1], self.T))
        dims: list[Dim] = []
        if dfs.evolve in ("both", "indicators"):
            for t in range(*self.window):
                dims.append(Dim(f"I.{t:05d}", ilo, ihi, float(self.i0[t])))
        if dfs.evolve in ("both", "scales"):
            for idx in np.ndindex(*shape):
                name = "W." + ".".join(f"{k:03d}" for k in idx)
                dims.append(Dim(name, slo, shi, float(self.w0[idx])))
        self.vector = VectorSpace(dims, sigma0=sigma0, cma=cma)

    @classmethod
    def from_config(
        cls,
        cfg: SearchConfig,
        model_paths: list[str] | None = None,
        layer_counts: list[int] | None = None,
        labels: list[str] | None = None,
        aliases: dict[str, int] | None = None,
    ) -> DFSSpace:
        """Build from config; ``model_paths`` overrides ``dfs.models`` (PS+DFS stage 2);
        ``aliases``: other names ``dfs.head_model`` may use for a model (its config name)."""
        dfs = cfg.dfs
        errors: list[tuple[str, str]] = []
        if model_paths is None:
            names = dfs.models or list(cfg.models)
            labels = list(names)
            model_paths = [cfg.model_path(m) for m in names]
            for i, p in enumerate(model_paths):
                if not os.path.isdir(p):
                    errors.append((f"dfs.models.{i}", f"no such model folder {p!r}"))
            if len(model_paths) < 1:
                errors.append(("dfs.models", "needs at least one model"))
            if errors:
                raise ConfigError(errors)
        if layer_counts is None:
            layer_counts = [num_layers(p) for p in model_paths]
        M = sum(layer_counts)
        T = M * dfs.repeats
        if dfs.window is not None and dfs.window[1] > T:
            errors.append(
                ("dfs.window", f"end {dfs.window[1]} is past the last slot (T = M * r = {T})")
            )
        if (
            dfs.min_layers_per_model * dfs.repeats > 0
            and dfs.min_layers_per_model > min(layer_counts) * dfs.repeats
        ):
            errors.append(
                (
                    "dfs.min_layers_per_model",
                    f"{dfs.min_layers_per_model} exceeds the slots of the smallest model "
                    f"({min(layer_counts)} layers x {dfs.repeats} repeats)",
                )
            )
        slots = None
        if dfs.start_path is not None and not errors:
            slots = start_slots(dfs.start_path, labels or [], layer_counts, dfs.repeats, errors)
        head = head_index(dfs.head_model, labels or [], aliases or {}, errors)
        if errors:
            raise ConfigError(errors)
        return cls(
            model_paths,
            layer_counts,
            dfs,
            sigma0=cfg.optimizer.sigma0,
            cma=cfg.optimizer.sampler == "cmaes",
            seed=cfg.optimizer.seed,
            dtype=cfg.dtype,
            labels=labels,
            start_slots=slots,
            head=head,
            tokenizer_source=tokenizer_path(cfg),
        )

    # -- vector -> (I, W) -> recipe ---------------------------------------------------------

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Full-length I (T) and W (evolved shape) from the vector, after repairs."""
        i = self.i0.copy()
        w = self.w0.copy()
        k = 0
        if self.cfg.evolve in ("both", "indicators"):
            n = self.window[1] - self.window[0]
            i[self.window[0] : self.window[1]] = x[k : k + n]
            k += n
        if self.cfg.evolve in ("both", "scales"):
            w = np.asarray(x[k:], dtype=np.float64).reshape(self.w0.shape)
        return self._repair(i), w

    def _repair(self, i: np.ndarray) -> np.ndarray:
        """Keep at least ``min_layers_per_model`` slots of each model (highest I first)."""
        need = self.cfg.min_layers_per_model
        if need <= 0:
            return i
        i = i.copy()
        slot_owner = np.tile(self.owner, self.cfg.repeats)
        eps = 1e-6
        for m in range(len(self.layer_counts)):
            idx = np.flatnonzero(slot_owner == m)
            kept = int((i[idx] > 0).sum())
            if kept >= need:
                continue
            off = idx[i[idx] <= 0]
            for t in off[np.argsort(-i[off], kind="stable")][: need - kept]:
                i[t] = eps
        return i

    def scales_matrix(self, w: np.ndarray) -> list[list[float]]:
        """W as emitted: M x M (full), n x n (compact), or n x n from the shared number."""
        if self.cfg.scales == "shared":
            n = len(self.model_paths)
            m = np.full((n, n), float(w.reshape(-1)[0]))
            np.fill_diagonal(m, 1.0)
            return m.tolist()
        return np.asarray(w, dtype=np.float64).tolist()

    def parameters(self, x: np.ndarray) -> dict[str, Any]:
        """The ``dfs`` method parameters (shared by the ``dfs`` and ``ps_dfs`` recipes)."""
        i, w = self.split(x)
        out: dict[str, Any] = {
            "repeats": self.cfg.repeats,
            "indicators": [float(v) for v in i],
            "scales": self.scales_matrix(w),
            "pin_ends": self.cfg.pin_ends,
        }
        if self.head:  # model A's (the default) is left out: recipes stay as they were
            out["head_model"] = self.head
        return out

    def recipe(self, x: np.ndarray) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "merge_method": "dfs",
            "models": [{"model": p} for p in self.model_paths],
            "parameters": self.parameters(x),
            "dtype": self.dtype,
        }
        if self.tokenizer_source is not None:
            doc["tokenizer_source"] = self.tokenizer_source
        return doc

    # -- local moves (the slot-flip polish, mergekit_evo.search.stage.polish) ---------------------

    def used_scales(self, i: np.ndarray) -> set[tuple[int, ...]]:
        """Indices into the evolved W that the path of ``i`` actually uses (as plan_path)."""
        path = self._global_path(i)
        used: set[tuple[int, ...]] = set()
        for a, b in zip(path[:-1], path[1:], strict=True):
            oa, ob = int(self.owner[a]), int(self.owner[b])
            if self.cfg.scales == "full":
                used.add((a, b))
            elif self.cfg.scales == "compact":
                used.add((oa, ob))
            elif oa != ob:  # shared: only cross-model hops read the number
                used.add((0,))
        return used

    def neighbours(self, x: np.ndarray, step: float) -> list[tuple[str, np.ndarray]]:
        """Local moves from ``x``: path moves, then a +-``step`` change of each used scale.

        Path moves: every single-slot flip; every *shift* - a layer moved to its slot in the
        next or previous repetition (the path keeps its layers in another order); every *swap*
        - a layer replaced by the same-depth layer of another model, in the same repetition.
        Shifts and swaps are two flips at once, which single flips reach only through a worse
        path in between; run moves (:meth:`_run_moves`) swap or drop several layers at once.
        Order (``dfs.polish_order``, what a polish with less budget than moves gets to try):
        flips, shifts and swaps, runs; or runs (coarse to fine), swaps, shifts, flips.
        ``step`` is a fraction of the scale bounds' range.  Moves stay inside the range a trial
        can take (:meth:`VectorSpace.box`); a flip that cannot cross 0 there
        is left out, as are scale entries the path does not use (they cannot change the model).
        """
        lo, hi = self.vector.box()
        i, _ = self.split(x)
        eps = 1e-3 * (self.cfg.indicator_bounds[1] - self.cfg.indicator_bounds[0])
        flipped: dict[int, float] = {}  # slot -> flipped value, for slots a trial can flip
        if self.cfg.evolve in ("both", "indicators"):
            for t in range(*self.window):
                k = t - self.window[0]
                v = float(x[k])
                new = min(max(-v, eps), hi[k]) if v <= 0 else max(-v, lo[k])
                if (new > 0) != (v > 0):
                    flipped[t] = new
        flips: list[tuple[str, np.ndarray]] = []
        for t, new in flipped.items():
            y = x.copy()
            y[t - self.window[0]] = new
            flips.append((f"flip I.{t:05d}", y))
        offset = np.concatenate([[0], np.cumsum(self.layer_counts)])
        pairs: list[tuple[str, int, int]] = []
        for t in flipped:
            if t + self.M in flipped:
                pairs.append(("shift", t, t + self.M))  # same layer, next repetition
            rep, g = divmod(t, self.M)
            m = int(self.owner[g])
            depth = g - int(offset[m])
            for m2 in range(m + 1, len(self.layer_counts)):  # same depth, another model
                if depth < self.layer_counts[m2]:
                    u = rep * self.M + int(offset[m2]) + depth
                    if u in flipped:
                        pairs.append(("swap", t, u))
        twos: list[tuple[str, np.ndarray]] = []
        for kind, t, u in pairs:
            if (i[t] > 0) != (i[u] > 0):
                y = x.copy()
                y[t - self.window[0]] = flipped[t]
                y[u - self.window[0]] = flipped[u]
                twos.append((f"{kind} I.{t:05d} I.{u:05d}", y))
        runs = self._run_moves(x, i, flipped)
        if self.cfg.polish_order == "runs":  # the largest changes first (dfs.polish_order)
            out = runs + [m for m in twos if m[0].startswith("swap")]
            out += [m for m in twos if not m[0].startswith("swap")] + flips
        else:
            out = flips + twos + runs
        used = self.used_scales(i)
        slo, shi = self.cfg.scale_bounds
        for k, d in enumerate(self.vector.dims):
            if not d.name.startswith("W."):
                continue
            idx = tuple(int(p) for p in d.name.split(".")[1:])
            if idx not in used:
                continue
            for sign in (-1.0, 1.0):
                new = float(np.clip(x[k] + sign * step * (shi - slo), lo[k], hi[k]))
                if abs(new - x[k]) > 1e-12:
                    y = x.copy()
                    y[k] = new
                    out.append((f"{d.name} {sign * step:+g}", y))
        return out

    def _run_moves(
        self, x: np.ndarray, i: np.ndarray, flipped: dict[int, float]
    ) -> list[tuple[str, np.ndarray]]:
        """Block moves on the path's runs (consecutive layers of one model in one repetition).

        For each run and each of its prefixes and suffixes of 2 or more layers: *swap* it for the
        same-depth layers of another model (several single swaps at once; in the same
        repetition, or with ``polish_order: runs`` in whichever repetition keeps them at the
        run's place in the path, and only then), and *drop* it (not the whole run: several flips
        at once). A chain of single moves reaches these only when
        each step improves; measured where none does (docs/planted.md ``dfs_r1013``: the path
        starts after dropping two of A's first layers, each drop alone worse; the DFS zoo: MATH's
        layers under VERBS' embeddings, 5-15% until most of them are in).
        """
        offset = np.concatenate([[0], np.cumsum(self.layer_counts)])
        on = [t for t in range(*self.window) if i[t] > 0 and t in flipped]
        runs: list[list[int]] = []
        for t in on:
            if (
                runs
                and t == runs[-1][-1] + 1
                and t // self.M == runs[-1][-1] // self.M
                and (self.owner[t % self.M] == self.owner[runs[-1][-1] % self.M])
            ):
                runs[-1].append(t)
            else:
                runs.append([t])
        out: list[tuple[int, str, np.ndarray]] = []  # (coarseness rank, label, vector)
        seen: set[tuple[int, ...]] = set()

        def add(rank: int, label: str, off: list[int], on_: list[int]) -> None:
            key = (*off, -1, *on_)
            if key in seen:
                return
            seen.add(key)
            y = x.copy()
            for t in (*off, *on_):
                y[t - self.window[0]] = flipped[t]
            out.append((rank, label, y))

        # polish_order "runs": a swap puts the other model's layers where the run's were in the
        # path, in the repetition that keeps them there (A's slots come first in each
        # repetition, so B's layers before A's must sit one repetition earlier)
        in_place = self.cfg.polish_order == "runs"
        on_slots = [t for t in range(self.T) if i[t] > 0]

        def reps(rep: int) -> list[int]:
            near = (rep, rep - 1, rep + 1) if in_place else (rep,)
            return [r for r in near if 0 <= r < self.cfg.repeats]

        def keeps_place(part: list[int], dst: list[int]) -> bool:
            swap = dict(zip(part, dst, strict=True))
            want = [swap.get(t, t) % self.M for t in on_slots]
            got = [t % self.M for t in sorted(set(on_slots) - set(part) | set(dst))]
            return got == want

        for run in runs:
            n = len(run)
            rep, m = run[0] // self.M, int(self.owner[run[0] % self.M])
            rank = {k: r for r, k in enumerate(coarse_to_fine(2, n))}
            for k in range(2, n + 1):
                for part in (run[:k], run[n - k :]):
                    depths = [t % self.M - int(offset[m]) for t in part]
                    for m2 in range(len(self.layer_counts)):
                        if m2 == m or max(depths) >= self.layer_counts[m2]:
                            continue
                        for r2 in reps(rep):
                            dst = [r2 * self.M + int(offset[m2]) + d for d in depths]
                            if not all(u in flipped and i[u] <= 0 for u in dst):
                                continue
                            if in_place and not keeps_place(part, dst):
                                continue
                            label = f"swap-run I.{part[0]:05d}..I.{part[-1]:05d} -> m{m2}"
                            add(rank[k], label + (f" r{r2}" if r2 != rep else ""), part, dst)
                            break
                    if k < n:
                        add(rank[k], f"drop-run I.{part[0]:05d}..I.{part[-1]:05d}", part, [])
        if self.cfg.polish_order == "runs":  # stable: within a rank, the runs in path order
            out.sort(key=lambda move: move[0])
        return [(label, y) for _, label, y in out]

    def path_vector(self, slots: list[int]) -> np.ndarray:
        """The vector whose path is exactly ``slots`` (on at +2 sigma, off at -2 sigma, as
        ``dfs.start_path``), scales at their start; slots outside the window keep their start."""
        lo, hi = self.cfg.indicator_bounds
        two_sigma = 2 * self.vector.sigma0 * (hi - lo)
        i = np.full(self.T, -two_sigma)
        i[slots] = two_sigma
        x = self.vector.x0()
        if self.cfg.evolve in ("both", "indicators"):
            n = self.window[1] - self.window[0]
            x[:n] = np.clip(i[self.window[0] : self.window[1]], lo, hi)
        return x

    def layer_path(self, x: np.ndarray) -> list[tuple[int, int]]:
        """The layers a model built from ``x`` runs, in order, as (model index, layer)."""
        offset = np.concatenate([[0], np.cumsum(self.layer_counts)])
        path = self._global_path(self.split(x)[0])
        return [(int(self.owner[g]), g - int(offset[self.owner[g]])) for g in path]

    def _global_path(self, i: np.ndarray) -> list[int]:
        """The path of ``i`` as indices into the M layers, ``pin_ends`` applied as the ``dfs``
        method applies it (methods/dfs.py plan_path)."""
        path = [t % self.M for t in range(self.T) if i[t] > 0]
        if self.cfg.pin_ends:
            first, last = 0, self.layer_counts[0] - 1
            if not path or path[0] != first:
                path.insert(0, first)
            if path[-1] != last:
                path.append(last)
        return path

    def path_length(self, x: np.ndarray) -> int:
        """Number of kept slots (before pin_ends adds A's first/last layer)."""
        i, _ = self.split(x)
        return int((i > 0).sum())

    def describe(self, x: np.ndarray) -> dict[str, float]:
        i, w = self.split(x)
        out: dict[str, float] = {"path_length": float((i > 0).sum())}
        for m, label in enumerate(self.labels):
            slot_owner = np.tile(self.owner, self.cfg.repeats)
            out[f"layers.{label}"] = float(((i > 0) & (slot_owner == m)).sum())
        flat = np.asarray(w).reshape(-1)
        out["scale_mean"] = round(float(flat.mean()), 6)
        return out


def head_index(
    name: str | None,
    labels: list[str],
    aliases: dict[str, int],
    errors: list[tuple[str, str]],
) -> int:
    """The index of ``dfs.head_model`` among the DFS models (0 when None); a name that is none
    of them goes to ``errors``."""
    if name is None:
        return 0
    if name in labels:
        return labels.index(name)
    if name in aliases:
        return aliases[name]
    errors.append(
        ("dfs.head_model", f"{name!r} is not one of the DFS models {labels + sorted(aliases)}")
    )
    return 0


def tokenizer_path(cfg: SearchConfig) -> str | None:
    """``dfs.tokenizer_source`` as MergeKit reads it: a model name becomes its path."""
    tok = cfg.dfs.tokenizer_source
    if tok is None or tok in ("base", "union"):
        return tok
    return cfg.model_path(tok)


def coarse_to_fine(lo: int, hi: int) -> list[int]:
    """``lo..hi`` in bisection order: the middle, then the middles of both halves, and so on.

    The run moves' lengths in this order (``dfs.polish_order: runs``) try cut points spread over
    the whole run before neighbouring ones: a polish that can afford only some of them still
    sees the coarse shape of the fitness along the run (where one model's layers should end)."""
    out: list[int] = []
    spans = [(lo, hi)]
    while spans:
        nxt: list[tuple[int, int]] = []
        for a, b in spans:
            if a > b:
                continue
            mid = (a + b) // 2
            out.append(mid)
            nxt += [(a, mid - 1), (mid + 1, b)]
        spans = nxt
    return out


def start_slots(
    path: list[tuple[str, int]],
    labels: list[str],
    layer_counts: list[int],
    repeats: int,
    errors: list[tuple[str, str]],
) -> list[int]:
    """The slots a layer path takes: each layer in the earliest repetition after the last.

    Problems go to ``errors`` (field ``dfs.start_path.K``): an unknown model, a layer out of
    range, or a path that needs more repetitions than ``repeats``.
    """
    m_total = sum(layer_counts)
    offset = np.concatenate([[0], np.cumsum(layer_counts)])
    slots: list[int] = []
    last = -1
    for k, (name, layer) in enumerate(path):
        if name not in labels:
            errors.append((f"dfs.start_path.{k}", f"{name!r} is not one of dfs.models {labels}"))
            continue
        m = labels.index(name)
        if not 0 <= layer < layer_counts[m]:
            errors.append(
                (f"dfs.start_path.{k}", f"{name} has layers 0..{layer_counts[m] - 1}, not {layer}")
            )
            continue
        g = int(offset[m]) + layer
        rep = 0 if g > last else (last - g) // m_total + 1
        t = rep * m_total + g
        if t // m_total >= repeats:
            errors.append(
                (
                    "dfs.repeats",
                    f"{repeats} is too few for dfs.start_path: layer {k} ({name} {layer}) needs "
                    f"repetition {t // m_total + 1}",
                )
            )
            return slots
        slots.append(t)
        last = t
    return slots
