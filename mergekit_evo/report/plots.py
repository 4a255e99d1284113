"""The run's pictures as PNG bytes (matplotlib, Agg): fitness, PS heatmap, DFS path, Pareto, report.

Each function takes plain data (trials.csv rows, metrics.json, a recipe's path) and returns the
PNG, or ``None`` when the run has nothing of that kind (no DFS stage, one objective...), so the
HTML report and ``mergekit-evo report`` can show what exists and say what does not.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: a PS coordinate name: [s0.]model.param[@layer][[filter]][[i]] (space/ps.py, space/template.py)
_COORD = re.compile(
    r"^(?P<row>.+?)(?:@(?P<layer>\d+))?(?:\[(?P<filt>[^\]]*[^\]\d][^\]]*)\])?(?:\[(?P<idx>\d+)\])?$"
)


def _figure(w: float, h: float) -> Figure:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fitness_plot(
    rows: Sequence[dict[str, Any]], baselines: dict[str, float], start_label: str = "start point"
) -> bytes | None:
    """Fitness of every trial in order (stages side by side), best so far, source baselines.

    Pruned trials (multi-fidelity) are drawn apart, as small grey marks at the partial fitness
    they were stopped at: most candidates of a search with rungs end there, and leaving them out
    would hide where the search looked; they never count towards the best so far."""
    done = [r for r in rows if r.get("state") == "COMPLETE" and _num(r.get("fitness")) is not None]
    pruned = [r for r in rows if r.get("state") == "PRUNED" and _num(r.get("fitness")) is not None]
    if not done:
        return None
    fig = _figure(8, 4.2)
    ax = fig.add_subplot()
    stages = list(dict.fromkeys(str(r["stage"]) for r in rows))
    offset, best = 0, -math.inf
    colors = {"ps": "tab:blue", "dfs": "tab:orange"}
    bx: list[float] = []
    by: list[float] = []
    pruned_label = "pruned (fitness when stopped)"
    for k, stage in enumerate(stages):
        mine = sorted((r for r in done if r["stage"] == stage), key=lambda r: int(r["number"]))
        if not mine:
            continue
        cut = [r for r in pruned if r["stage"] == stage]
        if cut:
            px = [offset + int(r["number"]) for r in cut]
            py = [float(r["fitness"]) for r in cut]
            ax.scatter(px, py, s=8, marker="x", lw=0.8, alpha=0.5, color="grey", label=pruned_label)
            pruned_label = "_nolegend_"  # one legend entry for every stage's pruned trials
        xs = [offset + int(r["number"]) for r in mine]
        ys = [float(r["fitness"]) for r in mine]
        ax.scatter(
            xs, ys, s=14, alpha=0.6, color=colors.get(stage, f"C{k + 2}"), label=f"{stage} trial"
        )
        for x, y in zip(xs, ys, strict=True):
            best = max(best, y)
            bx.append(x)
            by.append(best)
        if k == 0:
            ax.scatter([xs[0]], [ys[0]], s=90, marker="*", color="black", zorder=5,
                       label=f"trial 0 ({start_label})")  # fmt: skip
        if k > 0:
            ax.axvline(offset - 0.5, color="grey", lw=0.8, ls=":")
        offset = max(xs + [offset + int(r["number"]) for r in cut]) + 1
    ax.step(bx, by, where="post", color="black", lw=1.6, label="best so far")
    for i, (name, v) in enumerate(sorted(baselines.items())):
        if name != "best" and _num(v) is not None:
            ax.axhline(float(v), color=f"C{i + 2}", ls="--", lw=1.1, label=f"source {name}")
    ax.set_xlabel("trial (in order; stages one after the other)")
    ax.set_ylabel("fitness (search split)")
    ax.set_title("Fitness per trial")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return _png(fig)


def ps_table(coefficients: dict[str, float]) -> tuple[list[str], list[str], list[list[float]]]:
    """Coordinates -> (row labels ``model.param[filter]``, column labels, matrix; NaN = none)."""
    cells: dict[tuple[str, str], float] = {}
    rows: list[str] = []
    cols: list[str] = []
    for name, v in coefficients.items():
        m = _COORD.match(name)
        val = _num(v)
        if m is None or val is None:
            continue
        row = m.group("row") + (f"[{m.group('filt')}]" if m.group("filt") else "")
        if m.group("layer") is not None:
            col = f"layer {m.group('layer')}"
        elif m.group("idx") is not None:
            col = f"point {m.group('idx')}"
        else:
            col = "all layers"
        rows += [row] if row not in rows else []
        cols += [col] if col not in cols else []
        cells[(row, col)] = val

    def order(c: str) -> tuple[int, int]:
        return (
            (0, -1)
            if c == "all layers"
            else (1 if c.startswith("layer") else 2, int(c.split()[-1]))
        )

    cols.sort(key=order)
    matrix = [[cells.get((r, c), math.nan) for c in cols] for r in rows]
    starts = [int(c.split()[-1]) for c in cols if c.startswith("layer ")]
    if len(starts) > 1 and len({b - a for a, b in zip(starts, starts[1:], strict=False)}) == 1:
        size = starts[1] - starts[0]  # layer groups: "layers 0-1", "layers 2-3", ...
        if size > 1:
            names = {f"layer {a}": f"layers {a}-{a + size - 1}" for a in starts}
            cols = [names.get(c, c) for c in cols]
    return rows, cols, matrix


def ps_heatmap(coefficients: dict[str, float], title: str) -> bytes | None:
    """The PS champion's numbers: one row per model and parameter, one column per layer group."""
    import numpy as np

    rows, cols, matrix = ps_table(coefficients)
    if not rows:
        return None
    data = np.array(matrix, dtype=float)
    fig = _figure(max(5.0, 1.1 * len(cols) + 3.5), max(2.4, 0.42 * len(rows) + 1.4))
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=30 if len(cols) > 4 else 0, fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    if data.size <= 120:
        lo, hi = np.nanmin(data), np.nanmax(data)
        for (i, j), v in np.ndenumerate(data):
            if not math.isnan(v):
                dark = hi > lo and (v - lo) / (hi - lo) > 0.6
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if dark else "white")  # fmt: skip
    fig.colorbar(im, ax=ax, shrink=0.9)
    ax.set_title(title)
    return _png(fig)


def dfs_path_plot(
    layers: Sequence[tuple[int, int]], scales: Sequence[float], labels: Sequence[str]
) -> bytes | None:
    """The champion's layer path: one bar per position, coloured by source model, with scales."""
    if not layers:
        return None
    fig = _figure(max(6.0, 0.22 * len(layers) + 2.5), 4.2)
    ax = fig.add_subplot()
    xs = range(len(layers))
    colors = [f"C{m}" for m, _ in layers]
    ax.bar(xs, [layer + 1 for _, layer in layers], color=colors, width=0.8)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("position in the merged model")
    ax.set_ylabel("source layer (1 = first)")
    ax.set_title(f"DFS path: {len(layers)} layers")
    from matplotlib.patches import Patch

    used = sorted({m for m, _ in layers})
    handles = [Patch(color=f"C{m}", label=labels[m] if m < len(labels) else f"model {m}")
               for m in used]  # fmt: skip
    ax2 = ax.twinx()
    ax2.plot(list(xs), list(scales), color="black", marker="o", ms=3, lw=1, label="scale W")
    ax2.set_ylabel("scale on entering the layer")
    lo, hi = min(scales), max(scales)
    ax2.set_ylim(min(0.0, lo - 0.1), max(2.0, hi + 0.1))
    ax.legend(handles=[*handles, *ax2.get_legend_handles_labels()[0]],
              labels=[h.get_label() for h in handles] + ["scale W"], fontsize=8,
              loc="upper left")  # fmt: skip
    return _png(fig)


def pareto_plot(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> bytes | None:
    """Two objectives: every completed trial, the non-dominated ones joined."""
    pts = []
    for r in rows:
        a, b = _num(r.get("objective_0")), _num(r.get("objective_1"))
        if r.get("state") == "COMPLETE" and a is not None and b is not None:
            pts.append((a, b))
    if not pts:
        return None
    front = sorted(
        {p for p in pts if not any(q != p and q[0] >= p[0] and q[1] >= p[1] for q in pts)}
    )
    fig = _figure(6, 4.6)
    ax = fig.add_subplot()
    ax.scatter(*zip(*pts, strict=True), s=14, alpha=0.5, label="trials")
    ax.plot(*zip(*front, strict=True), color="tab:red", marker="o", label="Pareto front")
    ax.set_xlabel(names[0] if names else "objective 0")
    ax.set_ylabel(names[1] if len(names) > 1 else "objective 1")
    ax.set_title("Pareto front (both maximised)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def report_plot(report: dict[str, Any] | None) -> bytes | None:
    """Report-split scores: each source beside the champion."""
    if not report:
        return None
    names = list(report.get("sources", {}))
    vals = [_num(report["sources"][n].get("score")) for n in names]
    champ = _num((report.get("champion") or {}).get("score"))
    if champ is None:
        return None
    labels = [*names, "champion"]
    heights = [v if v is not None else 0.0 for v in vals] + [champ]
    fig = _figure(max(4.0, 1.1 * len(labels) + 2), 3.6)
    ax = fig.add_subplot()
    bars = ax.bar(labels, heights, color=["tab:grey"] * len(names) + ["tab:green"])
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_ylabel("score (report split)")
    ax.set_title("Report split: sources vs champion")
    ax.set_ylim(0, max(heights) * 1.15 if max(heights) > 0 else 1)
    return _png(fig)
