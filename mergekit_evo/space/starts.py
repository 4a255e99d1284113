"""Standard start points: the merges a person tries first, as points of a search space.

Before an optimiser proposes anything, a stage scores these (issue 17): a search that cannot
beat them has found nothing a person would not find in minutes, and CMA-ES started from the
best of them spends its budget near something good instead of at the centre of the box.

PS (:class:`~mergekit_evo.space.ps.PSSpace`):
- ``x0``: the configured start (the paper's 0.5 everywhere, or ``ps.x0``); always first;
- ``source:<name>``: one source alone (its weight 1, every other 0, densities 1);
- ``task_arithmetic``: every task vector at weight 1 (base + sum of deltas; needs a base);
- ``<method>:defaults``: the method at MergeKit's defaults, every weight 1.
A recipe-shaped space (``--from-recipe``) starts from the recipe alone (``recipe``).

DFS (:class:`~mergekit_evo.space.dfs.DFSSpace`, the DFS stage of PS+DFS too):
- ``own:<model>``: each model's own layers in order (model A's first: the default start);
- ``half:<a>+<b>``: the first half of a's layers, then the second half of b's, for the first
  two models both ways round (the obvious frankenmerges).
Scales start at 1 (no correction), as a hand-written passthrough merge would.  A point is a
path: every DFS candidate has model A's embeddings and the final norm and head of
``dfs.head_model`` (model A's unless set), so ``hand`` carries the space's ``head_model``.

Each point carries ``hand``: the MergeKit recipe a person would write for it, exactly (the
zoo table scores those as its ``hand:`` / ``hand_path:`` rows). Where the configured space
cannot express a point exactly (bounds, a method with sign election, ``pin_ends``...), the
nearest point it can is used and ``note`` says in one line what differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Methods whose result at density 1 and weight 1 per model is base + the sum of the deltas.
_PLAIN_SUM = frozenset({"task_arithmetic", "dare_linear"})


@dataclass(frozen=True)
class StartPoint:
    """One standard start point of a space."""

    label: str
    x: np.ndarray | None  # the space's vector (inside the box a trial can take); None: none
    exact: bool
    note: str = ""  # why the space cannot express the point exactly ("" when it can)
    hand: dict[str, Any] | None = None  # the recipe a person would write for it

    def params(self, space: Any) -> dict[str, float]:
        """Optuna parameters to enqueue."""
        assert self.x is not None, f"start point {self.label} has no point in this space"
        return space.vector.params(self.x)


def start_points(space: Any, dedupe: bool = True) -> list[StartPoint]:
    """The space's standard start points, the configured start first; ``dedupe`` drops a point
    the space already holds under an earlier label (one to enqueue, not one to report). A
    point the space cannot hold at all comes with ``x`` None and its note."""
    from mergekit_evo.space.dfs import DFSSpace
    from mergekit_evo.space.ps import PSSpace
    from mergekit_evo.space.ps_dfs import PSDFSSpace

    if isinstance(space, PSSpace):
        points = _ps_points(space)
    elif isinstance(space, DFSSpace):
        points = _dfs_points(space, space.recipe)
    elif isinstance(space, PSDFSSpace):
        points = _dfs_points(space.dfs, space.recipe)
    else:  # a recipe-shaped space: its recipe is the start, nothing else maps onto it
        x0 = space.vector.x0()
        return [StartPoint("recipe", x0, True, hand=space.recipe(x0))]
    if not dedupe:
        return points
    out: list[StartPoint] = []
    seen: set[str] = set()
    for p in points:
        key = "" if p.x is None else json.dumps(p.params(space), sort_keys=True)
        if p.x is None or key not in seen:
            seen.add(key)
            out.append(p)
    return out


# -- PS -------------------------------------------------------------------------------------


def _defaults(method: str) -> tuple[dict[str, float], dict[str, Any]]:
    """MergeKit's defaults of a method: (float parameters, every shared parameter)."""
    from mergekit.merge_methods import registry

    floats: dict[str, float] = {}
    shared: dict[str, Any] = {}
    for p in registry.get(method).spec.parameters:
        if type(p.default) is object:  # no default (weight, t)
            continue
        if p.value_type is float:
            floats[p.name] = float(p.default)
        if p.scope.value == "shared":
            shared[p.name] = p.default
    return floats, shared


def _ps_points(space: Any) -> list[StartPoint]:
    x0 = space.vector.x0()
    points = [StartPoint("x0", x0, True, hand=space.recipe(x0))]
    floats, shared_defaults = _defaults(space.method)
    names = [name for name, _ in space.models]
    fixed_ok = all(shared_defaults.get(k, v) == v for k, v in space.fixed.items())
    wanted: list[tuple[str, dict[str | None, float], str, dict[str, Any] | None]] = []
    if "weight" in space.params:
        for name, path in space.models:
            weights = {n: 1.0 if n == name else 0.0 for n in names}
            hand = {
                "merge_method": "linear",
                "models": [{"model": path, "parameters": {"weight": 1.0}}],
                "dtype": space.dtype,
            }
            wanted.append((f"source:{name}", weights, "", hand))
        if space.base_model:
            why = (
                ""
                if space.method in _PLAIN_SUM
                else (f"{space.method} is not a plain sum of task vectors at density 1")
            )
            hand = _hand(space, "task_arithmetic", {})
            wanted.append(("task_arithmetic", dict.fromkeys(names, 1.0), why, hand))
        why = "" if fixed_ok else f"ps.fixed {space.fixed} differs from MergeKit's defaults"
        hand = _hand(space, space.method, {})
        wanted.append((f"{space.method}:defaults", dict.fromkeys(names, 1.0), why, hand))
    else:
        points[0] = StartPoint(
            "x0", x0, True, note=f"{space.method} has no per-model weight: x0 only",
            hand=space.recipe(x0),
        )  # fmt: skip
    lo, hi = space.vector.box()
    for label, weights, why, hand in wanted:
        x = x0.copy()
        for k, c in enumerate(space.coords):  # MergeKit's defaults: density 1, no pruning
            if c.param == "weight" and c.model is not None:
                x[k] = weights[c.model]
            elif c.param in floats:
                x[k] = floats[c.param]
        clipped = np.clip(x, lo, hi)
        notes = [why] if why else []
        if not np.allclose(clipped, x):
            bad = [
                f"{d.name}={v:g} (range {a:g}..{b:g})"
                for d, v, a, b in zip(space.vector.dims, x, lo, hi, strict=True)
                if not a - 1e-12 <= v <= b + 1e-12
            ]
            notes.append("outside the search range: " + ", ".join(bad[:4]))
        if space.normalize_weights and label == "task_arithmetic":
            notes.append("ps.normalize_weights rescales the weights to sum 1")
        points.append(StartPoint(label, clipped, not notes, "; ".join(notes), hand))
    return points


def _hand(space: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A method at MergeKit's defaults, every model at weight 1 (what a person writes first)."""
    doc: dict[str, Any] = {"merge_method": method}
    if space.base_model:
        doc["base_model"] = space.base_model
    doc["models"] = [{"model": p, "parameters": {"weight": 1.0}} for _, p in space.models]
    if params:
        doc["parameters"] = params
    doc["dtype"] = space.dtype
    return doc


# -- DFS ------------------------------------------------------------------------------------


def _dfs_points(dfs: Any, recipe: Any) -> list[StartPoint]:
    from mergekit_evo.space.dfs import start_slots

    labels, counts = dfs.labels, dfs.layer_counts
    paths: list[tuple[str, list[tuple[str, int]]]] = []
    for label, n in zip(labels, counts, strict=True):
        paths.append((f"own:{label}", [(label, k) for k in range(n)]))
    if len(labels) >= 2:
        (a, na), (b, nb) = (labels[0], counts[0]), (labels[1], counts[1])
        paths.append((f"half:{a}+{b}", [(a, k) for k in range(na // 2)] + [
            (b, k) for k in range(nb // 2, nb)
        ]))  # fmt: skip
        paths.append((f"half:{b}+{a}", [(b, k) for k in range(nb // 2)] + [
            (a, k) for k in range(na // 2, na)
        ]))  # fmt: skip
    x0 = dfs.vector.x0()
    points = [StartPoint(_x0_label(dfs, x0, paths), x0, True, hand=recipe(x0))]
    for label, path in paths:
        errors: list[tuple[str, str]] = []
        slots = start_slots(path, labels, counts, dfs.cfg.repeats, errors)
        if errors:
            points.append(StartPoint(label, None, False, note=errors[0][1]))
            continue
        x = dfs.path_vector(slots)
        got = dfs.layer_path(x)
        want = [(labels.index(m), k) for m, k in path]
        note = "" if got == want else _path_note(dfs, want, got)
        points.append(StartPoint(label, x, not note, note, hand=recipe(x)))
    return points


def _x0_label(dfs: Any, x0: np.ndarray, paths: list[tuple[str, list[tuple[str, int]]]]) -> str:
    """The configured start's name: the own path it is, else ``start`` (dfs.start_path)."""
    got = dfs.layer_path(x0)
    for label, path in paths:
        if got == [(dfs.labels.index(m), k) for m, k in path]:
            return label
    return "start"


def _path_note(dfs: Any, want: list[tuple[int, int]], got: list[tuple[int, int]]) -> str:
    def show(p: list[tuple[int, int]]) -> str:
        return " ".join(f"{dfs.labels[m]}.{k}" for m, k in p[:3]) + (" ..." if len(p) > 3 else "")

    why = (
        "dfs.pin_ends keeps model A's first and last layers"
        if dfs.cfg.pin_ends
        else ("the evolved slots (dfs.window, dfs.min_layers_per_model) cannot hold it")
    )
    return f"{why}: path {show(got)} instead of {show(want)}"
