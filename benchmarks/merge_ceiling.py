"""How far above the hand merge can any merge of a zoo's weight space go? (issue 17's +3 goal)

    python benchmarks/merge_ceiling.py --zoo fixtures/zoo-paths [--zoo DIR ...]
        [--weights 0.5,0.75,1,1.25,1.5,1.75] [--limit 400] [--heldout-limit N]
        [--md docs/zoo-ceiling.md] [--json docs/zoo-ceiling.json]

Issue 17 asks the searched weight merges to beat the best ``hand:`` row by 3 held-out points.
Whether that is possible depends on the space, not only on the search: this scores a grid of
task-arithmetic merges ``base + a dMATH + b dVERBS`` (the whole space of ``ps_choice``'s winning
method with model-level weights, the zoo recipes' setting) on **both** splits and reports

- ``oracle``: the best grid point chosen on the held-out split itself, an upper bound of what a
  search of this space could show on the table (a search never sees held-out; the grid is coarse,
  so a finer optimum can sit slightly above it);
- ``picked``: the best grid point chosen on the search split's 400 fitness questions (what a
  perfect optimiser of the fitness would hand back), and its held-out score;
- the hand merge ``(1, 1)`` on both splits.

If ``oracle - hand < 3`` no champion of that space can meet the goal on that zoo, however well
it is searched. Held-out noise: 400 questions, one standard error ~2.3 points at 65%.
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
    REPO,
    Models,
    _log,
    _machine,
    _quiet,
    evaluator,
    ta_grid,
    zoo_max_gen_toks,
    zoo_sources,
)


def ceiling(
    zoo: Path,
    weights: list[float],
    work: Path,
    limit: int,
    held: int | None,
    batch: int,
    *,
    weights_b: list[float] | None = None,
    device: str = "cpu",
    candidates: str = "disk",
    deadline: float | None = None,
) -> dict[str, Any]:
    """The grid on both splits for one zoo (``weights`` for the first source, ``weights_b`` for
    the second, default the same). ``deadline``: a ``time.monotonic()`` after which no further
    point starts; the result then says ``cut`` and holds the points scored."""
    gen = zoo_max_gen_toks(zoo)
    include = [zoo / "tasks"]
    ev_search = evaluator(
        [("zoo_target_search", METRIC)], include, limit=limit, device=device,
        batch_size=batch, max_gen_toks=gen,
    )  # fmt: skip
    ev_held = evaluator(
        [("zoo_target_heldout", METRIC)], include, limit=held, device=device, report=True,
        batch_size=batch, max_gen_toks=gen,
    )  # fmt: skip
    models = Models(work, device, candidates=candidates)
    sources = zoo_sources(zoo)
    grid: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    points = [(a, b) for a in weights for b in (weights_b or weights)]
    for a, b in points:
        if deadline is not None and time.monotonic() > deadline:
            _log(f"{zoo.name}: deadline reached after {len(grid)} of {len(points)} points")
            break
        recipe = ta_grid(zoo, sources, (a, b))
        s = models.score(recipe, ev_search).score
        h = models.score(recipe, ev_held).score
        grid[f"{a:g},{b:g}"] = {"search": s, "heldout": h}
        _log(f"{zoo.name} ({a:g}, {b:g}): search {s:.4f} held-out {h:.4f}")
    if not grid:
        raise SystemExit(f"{zoo}: no grid point scored before the deadline")
    hand = grid.get("1,1")
    oracle_w = max(grid, key=lambda w: (grid[w]["heldout"], grid[w]["search"]))
    picked_w = max(grid, key=lambda w: (grid[w]["search"], -abs(sum(map(float, w.split(","))) - 2)))
    return {
        "zoo": str(zoo.resolve().relative_to(REPO))
        if zoo.resolve().is_relative_to(REPO)
        else str(zoo),
        "seed": json.loads((zoo / "zoo.json").read_text()).get("seed"),
        "sources": sources,
        "weights": weights,
        "weights_b": weights_b or weights,
        "cut": len(grid) < len(points),
        "device": device,
        "search_questions": limit,
        "grid": grid,
        "hand": hand,
        "oracle": {"weights": oracle_w, **grid[oracle_w]},
        "picked": {"weights": picked_w, **grid[picked_w]},
        "oracle_minus_hand": None if hand is None else grid[oracle_w]["heldout"] - hand["heldout"],
        "wall_s": time.perf_counter() - t0,
    }


def render(doc: dict[str, Any]) -> str:
    lines = [
        "# How far above the hand merge can the weight space go? (`benchmarks/merge_ceiling.py`)",
        "",
        f"{doc['date']}, {doc['machine']}, command: `{doc['command']}`.",
        "",
        "Task arithmetic `base + a dMATH + b dVERBS` (`dLANG` on the real-base zoo; the",
        "model-level weights of `ps_choice`'s winning method) on a grid of `a, b`, scored on the",
        "search split's fitness questions and on the held-out split. `oracle` is chosen on",
        "held-out itself: an upper bound of what any search of this space can show in",
        "`docs/zoo.md` (up to the grid's coarseness).",
        "",
        "| zoo | seed | hand (1, 1) held-out | oracle (a, b) | oracle held-out | oracle - hand |"
        " picked on search (a, b) | its search | its held-out |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for z in doc["zoos"]:
        h, o, p = z["hand"] or {}, z["oracle"], z["picked"]
        lines.append(
            f"| {z['zoo']} | {z['seed']} | {100 * h.get('heldout', float('nan')):.2f} | "
            f"({o['weights']}) | {100 * o['heldout']:.2f} | "
            f"{100 * (z['oracle_minus_hand'] or 0):+.2f} | ({p['weights']}) | "
            f"{100 * p['search']:.2f} | {100 * p['heldout']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", action="append", type=Path, required=True)
    ap.add_argument("--weights", default="0.5,0.75,1,1.25,1.5,1.75")
    ap.add_argument("--weights-b", default=None, help="the second source's (default: --weights)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--candidates", default="disk", choices=["disk", "auto", "memory"],
        help="how each grid point is built (auto: in accelerator memory on CUDA)",
    )  # fmt: skip
    ap.add_argument("--deadline", type=float, default=None, help="seconds: start no point after")
    ap.add_argument("--limit", type=int, default=400, help="search-split questions (400)")
    ap.add_argument("--heldout-limit", type=int, help="held-out questions (all)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--work", type=Path, default=Path("/tmp/merge_ceiling"))
    ap.add_argument("--md", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    _quiet()
    weights = [float(w) for w in args.weights.split(",")]
    weights_b = [float(w) for w in args.weights_b.split(",")] if args.weights_b else None
    deadline = time.monotonic() + args.deadline if args.deadline else None
    doc: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": _machine(args.device),
        "command": "python benchmarks/merge_ceiling.py " + " ".join(argv or sys.argv[1:]),
        "zoos": [],
    }
    for i, zoo in enumerate(args.zoo):
        doc["zoos"].append(
            ceiling(
                zoo,
                weights,
                args.work / str(i),
                args.limit,
                args.heldout_limit,
                args.batch_size,
                weights_b=weights_b,
                device=args.device,
                candidates=args.candidates,
                deadline=deadline,
            )  # fmt: skip
        )
        if args.json:
            args.json.write_text(json.dumps(doc, indent=2) + "\n")
        if args.md:
            args.md.write_text(render(doc))
    print(render(doc))
    return doc


if __name__ == "__main__":
    main()
