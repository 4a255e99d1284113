"""A PS search on the committed zoo from Python: load a config, cut it down, run, read results.

python examples/api_ps_search.py --out runs/api-ps [--max-trials 20] [--limit 50]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mergekit_evo.config import load_search_config
from mergekit_evo.search import apply_overrides, run_search

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/api-ps")
    ap.add_argument("--max-trials", type=int, default=20)
    ap.add_argument("--limit", type=int, default=50, help="search-split questions per trial")
    args = ap.parse_args()
    cfg = load_search_config(REPO / "recipes" / "zoo-ps.yml")  # DARE-TIES over math + verbs
    cfg = apply_overrides(cfg, max_trials=args.max_trials)
    fitness = cfg.fitness.model_copy(update={"limit": args.limit})
    cfg = cfg.model_copy(update={"fitness": fitness, "report": None})
    res = run_search(cfg, args.out, save_champion=True)
    m = res.metrics
    print(
        f"best source {m['baseline_fitness']['best']:.3f} -> champion {m['champion_fitness']:.3f}"
    )
    print(f"champion: {res.champion_path}  card: {res.champion_path / 'README.md'}")
    print(f"recipe: {res.best_recipe['merge_method']}, report: {res.rundir / 'report.html'}")


if __name__ == "__main__":
    main()
