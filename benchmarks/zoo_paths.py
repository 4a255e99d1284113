"""Hand-built layer paths against weight merges on a zoo (issue 13's "measure first").

    python benchmarks/zoo_paths.py --zoo fixtures/zoo-paths [--device cpu|cuda] [--limit N]
        [--ks 3,7,11] [--candidates disk|auto] [--batch-size N] [--json docs/zoo-paths.json]

Before a DFS search is asked to find a layer path that adds what no weight merge can, this
checks by hand that one exists: it scores on the zoo's search split (greedy, as the search does)

- task arithmetic base + a dMATH + b dVERBS on a grid of (a, b): what a PS search can reach
  (the zoo's PS genome has one weight per source, so it cannot pick layers);
- layer paths built with the project's ``dfs`` merge method (MergeKit), each written as the
  models' layers in order with model A (embeddings, final norm, head) named first: one source's
  layers under the other's embeddings, the first k layers of one source then the rest of the
  other (the paper's "language model's early layers, then the math model's later layers"),
  the other order, and deeper paths that add layers of one source before or after the other's.

Every candidate is merged by MergeKit and scored through lm-eval like a search trial.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_table import (  # noqa: E402
    METRIC,
    Models,
    _commit,
    _machine,
    _quiet,
    evaluator,
    zoo_max_gen_toks,
    zoo_sources,
)

GRID = (0.5, 1.0, 1.5)


def ta_recipe(zoo: Path, sources: list[str], weights: tuple[float, ...]) -> dict[str, Any]:
    return {
        "merge_method": "task_arithmetic",
        "base_model": str(zoo / "base"),
        "models": [
            {"model": str(zoo / n), "parameters": {"weight": float(w)}}
            for n, w in zip(sources, weights, strict=True)
        ],
        "parameters": {"normalize": False},
        "dtype": "float32",
    }


def path_recipe(
    zoo: Path, order: list[str], layers: int, path: list[tuple[str, int]], repeats: int = 3
) -> dict[str, Any]:
    """A ``dfs`` recipe over ``order`` (A first) whose path is ``path``, scales 1."""
    from mergekit_evo.space.dfs import start_slots

    errors: list[tuple[str, str]] = []
    slots = start_slots(path, order, [layers] * len(order), repeats, errors)
    if errors:
        raise ValueError(errors)
    t = layers * len(order) * repeats
    ind = [-1.0] * t
    for s in slots:
        ind[s] = 1.0
    n = len(order)
    return {
        "merge_method": "dfs",
        "models": [{"model": str(zoo / m)} for m in order],
        "parameters": {
            "repeats": repeats,
            "indicators": ind,
            "scales": [[1.0] * n for _ in range(n)],
            "pin_ends": False,
        },
        "dtype": "float32",
    }


def run(of: str, a: int, b: int) -> list[tuple[str, int]]:
    return [(of, i) for i in range(a, b + 1)]


def default_ks(layers: int) -> list[int]:
    """Split points k: every layer on a toy zoo (8 layers), about eight on a deeper model."""
    if layers <= 8:
        return list(range(layers - 1))
    step = max(1, layers // 8)
    return list(range(step - 1, layers - 1, step))


def paths(
    sources: list[str], layers: int, ks: list[int] | None = None
) -> dict[str, tuple[list[str], list[tuple[str, int]]]]:
    """Named paths: for each choice of model A, the shapes the module docstring lists; ``ks``:
    where "A's first k layers, then the other's" splits (default :func:`default_ks`)."""
    last = layers - 1
    ks = default_ks(layers) if ks is None else [k for k in ks if 0 <= k < last]
    rev = [k for k in (1, 3, 5) if k < last] if layers <= 8 else ks[::2]
    out: dict[str, tuple[list[str], list[tuple[str, int]]]] = {}
    for a in sources:
        o = next(s for s in sources if s != a)
        order = [a, o]
        ua, uo = a.upper(), o.upper()
        out[f"A={ua}: {uo} 0-{last}"] = (order, run(o, 0, last))
        for k in ks:
            out[f"A={ua}: {ua} 0-{k}, {uo} {k + 1}-{last}"] = (
                order,
                run(a, 0, k) + run(o, k + 1, last),
            )
        for k in rev:
            out[f"A={ua}: {uo} 0-{k}, {ua} {k + 1}-{last}"] = (
                order,
                run(o, 0, k) + run(a, k + 1, last),
            )
        for k in (0, 1, 3):
            out[f"A={ua}: {ua} 0-{k}, then {uo} 0-{last}"] = (order, run(a, 0, k) + run(o, 0, last))
        out[f"A={ua}: {uo} 0-{last}, then {ua} {last // 2}-{last}"] = (
            order,
            run(o, 0, last) + run(a, last // 2, last),
        )
        out[f"A={ua}: {ua} 0-{last}, then {uo} {last // 2}-{last}"] = (
            order,
            run(a, 0, last) + run(o, last // 2, last),
        )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--zoo", type=Path, required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit", type=int, default=100, help="search-split questions")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mergekit-evo-zoo-paths"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--ks", default=None, help="split points k, e.g. 3,7,11 (default: see code)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--candidates", default="disk", choices=["disk", "auto"])
    args = ap.parse_args(argv)
    _quiet()
    import mergekit_evo._hook  # noqa: F401

    t0 = time.perf_counter()
    zoo = args.zoo.resolve()
    manifest = json.loads((zoo / "zoo.json").read_text())
    layers = int(manifest["size_config"]["layers"])
    sources = zoo_sources(zoo)
    args.work.mkdir(parents=True, exist_ok=True)
    models = Models(args.work, args.device, candidates=args.candidates)
    ev = evaluator(
        [("zoo_target_search", METRIC)], [zoo / "tasks"], limit=args.limit, device=args.device,
        batch_size=args.batch_size, max_gen_toks=zoo_max_gen_toks(zoo),
    )  # fmt: skip
    ks = [int(k) for k in args.ks.split(",")] if args.ks else None
    rows: dict[str, dict[str, Any]] = {}

    def score(label: str, kind: str, source: str | dict[str, Any]) -> None:
        res = models.score(source, ev)
        rows[label] = {"kind": kind, "search": res.score}
        print(f"{label:50s} {100 * res.score:6.1f}", flush=True)

    for name in ("base", *sources):
        score(name, "model", str(zoo / name))
    for wa in GRID:
        for wb in (*GRID, 2.0):
            score(f"TA({wa}, {wb})", "merge", ta_recipe(zoo, sources, (wa, wb)))
    for label, (order, path) in paths(sources, layers, ks).items():
        score(label, "path", path_recipe(zoo, order, layers, path))
    best = {k: max((v["search"] for v in rows.values() if v["kind"] == k), default=None)
            for k in ("model", "merge", "path")}  # fmt: skip
    doc = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(args.device),
        "commit": _commit(),
        "command": " ".join(["python", *sys.argv]),
        "zoo": str(args.zoo),
        "design": manifest.get("design"),
        "seed": manifest.get("seed"),
        "size": manifest.get("size"),
        "limit": args.limit,
        "rows": rows,
        "best": best,
        "path_beats_every_merge": best["path"] is not None
        and best["merge"] is not None
        and best["path"] > best["merge"],
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps({k: doc[k] for k in ("best", "path_beats_every_merge", "wall_s")}))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


if __name__ == "__main__":
    main()
