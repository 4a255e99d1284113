"""Start a search from a community MergeKit recipe (trial 0 is the recipe) from Python.

python examples/api_from_recipe.py examples/community/ties.yml --out runs/api-ties
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mergekit_evo.recipe_import import search_config_from_recipe
from mergekit_evo.search import apply_overrides, run_search

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", nargs="?", default=str(REPO / "examples/community/ties.yml"))
    ap.add_argument("--out", default="runs/api-from-recipe")
    ap.add_argument("--max-trials", type=int, default=20)
    ap.add_argument("--limit", type=int, default=50, help="search-split questions per trial")
    args = ap.parse_args()
    _, cfg = search_config_from_recipe(
        args.recipe,
        out_dir=REPO,  # the community recipes' paths are relative to the repository
        tasks=["zoo_target_search"],
        metric="exact_match,flexible-extract",
        include_path=[str(REPO / "fixtures/zoo/tasks")],
        limit=args.limit,
    )
    res = run_search(apply_overrides(cfg, max_trials=args.max_trials), args.out)
    m = res.metrics
    print(f"the recipe (trial 0): {m['start_fitness']:.3f}")
    print(f"the search's best:    {m['champion_fitness']:.3f}  ({m['gain_over_start']:+.1%})")
    print(f"best recipe: {res.rundir / 'best.yml'}  report: {res.rundir / 'report.html'}")


if __name__ == "__main__":
    main()
