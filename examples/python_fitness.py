"""Evolve a merge on the committed zoo with a fitness of your own: a Python function.

No lm-eval task: ``zoo_accuracy(model, tokenizer)`` generates answers to 30 of the zoo's
two-step word problems and returns the share it gets right; ``run_search(..., fitness_fn=...)``
scores every candidate with it (trials, resume and outputs as with lm-eval tasks).

    python examples/python_fitness.py --out runs/python-fitness [--max-trials 20]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mergekit_evo.config import parse_search_config, resolve_paths
from mergekit_evo.search import run_search
from mergekit_evo.zoo.evaluate import accuracy, load_split

ZOO = Path(__file__).resolve().parents[1] / "fixtures" / "zoo"
QUESTIONS = load_split(ZOO / "data" / "target_search.jsonl")[:30]


def zoo_accuracy(model, tokenizer) -> float:
    """Exact-match accuracy on the search-split questions (greedy, 16 new tokens)."""
    return accuracy(model, tokenizer, QUESTIONS, max_new_tokens=16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/python-fitness")
    ap.add_argument("--max-trials", type=int, default=20)
    ap.add_argument("--questions", type=int, default=30, help="search-split questions scored")
    args = ap.parse_args()
    del QUESTIONS[args.questions :]
    cfg = parse_search_config(
        {
            "mode": "ps",
            "models": {"math": str(ZOO / "math"), "verbs": str(ZOO / "verbs")},
            "base_model": str(ZOO / "base"),
            "ps": {
                "method": "task_arithmetic",
                "parameters": ["weight"],
                "bounds": {"weight": [0, 2]},
                "x0": 1.0,
            },
            "fitness": {"function": "__main__:zoo_accuracy"},  # the name a resume checks
            "budget": {"max_trials": args.max_trials},
        }
    )
    res = run_search(resolve_paths(cfg), args.out, fitness_fn=zoo_accuracy)
    m = res.metrics
    print(f"sources: {m['baseline_fitness']}  champion: {m['champion_fitness']:.3f}")
    print(f"best recipe: {res.rundir / 'best.yml'}  report: {res.rundir / 'report.html'}")


if __name__ == "__main__":
    main()
