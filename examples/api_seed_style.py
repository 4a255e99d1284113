"""The original EvoMerge write-up's Python API, end to end on the committed zoo (CPU, minutes).

Notebook style: the three zoo models are loaded into memory and handed over as objects; each
call runs the real search (run folder, resume, report, metrics.json; every merge a MergeKit
recipe). The zoo is a word-level toy, so its GSM8K / MGSM scores are ~0: those calls show the
plumbing. The hybrid merge's fitness is the zoo's own task (``zoo_accuracy``), where merging
MATH and VERBS is what helps, so its gain is real.

    MERGEKIT_EVO_DATA=../shared/data python examples/api_seed_style.py [--generations 1]
        [--population 4] [--samples 4] [--out runs/api-seed-style]
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from mergekit_evo.api import (
    CMAESConfig,
    CMAESOptimizer,
    EvolutionConfig,
    Phase2Pipeline,
    evaluate_gsm8k,
    evaluate_mgsm,
    hybrid_merge,
    ps_merge_with_cmaes,
)
from mergekit_evo.zoo.evaluate import accuracy, load_split

ZOO = Path(__file__).resolve().parents[1] / "fixtures" / "zoo"
QUESTIONS = load_split(ZOO / "data" / "target_search.jsonl")[:12]


def zoo_accuracy(model: Any, tokenizer: Any) -> float:
    """A fitness of your own: the zoo's two-step word problems with the new verbs (greedy)."""
    return accuracy(model, tokenizer, QUESTIONS, max_new_tokens=16)


def quadratic(coeffs: np.ndarray) -> float:
    """Any function of n coefficients (the generic optimiser knows nothing of models)."""
    return -float(np.sum((coeffs - np.array([0.2, 0.5, 0.3])) ** 2))


def seed_style(
    generations: int = 1,
    population: int = 4,
    samples: int = 4,
    out: Path | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """The write-up's sequence with small budgets; returns what each step gave."""
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(ZOO / "base")
    m1, m2, m3 = (
        transformers.AutoModelForCausalLM.from_pretrained(ZOO / name)
        for name in ("base", "math", "verbs")
    )
    runs = {k: (out / k if out else None) for k in ("ps", "hybrid", "pipeline")}
    # a GSM8K fitness over the first `samples` search-split questions (bare evaluate_gsm8k
    # scores all 1,000: fine on a GPU, slow for a CPU demo)
    gsm8k = functools.partial(evaluate_gsm8k, max_samples=samples, max_gen_toks=32)

    config = CMAESConfig(population_size=population, sigma=0.3, max_generations=generations)
    cheap = CMAESConfig(population_size=population, sigma=0.3, max_generations=200)
    best_coeffs, best_fitness = CMAESOptimizer(cheap).optimize(
        quadratic, n_dimensions=3, n_trials=1000
    )
    merged = ps_merge_with_cmaes(
        models=[m1, m2, m3], fitness_fn=gsm8k, config=config, out=runs["ps"], log=log
    )
    merged_model, coeffs, fitness = merged
    acc = evaluate_gsm8k(merged_model, tok, max_samples=samples, max_gen_toks=32)["accuracy"]
    mgsm = evaluate_mgsm(merged_model, tok, max_samples=samples, language="ja")
    champion, metrics = hybrid_merge(
        base_models=[m1, m2, m3], fitness_fn=zoo_accuracy, tokenizer=tok, config=config,
        out=runs["hybrid"], log=log,
    )  # fmt: skip
    pipeline = Phase2Pipeline(
        EvolutionConfig(
            use_cmaes=True, use_hybrid_ps_dfs=True, ps_candidates_multiplier=3,
            use_real_fitness=True, benchmark_name="gsm8k", max_benchmark_samples=samples,
            num_generations=generations, population_size=population,
        )
    )  # fmt: skip
    pipeline_champion = pipeline.run([m1, m2, m3], tokenizer=tok, out=runs["pipeline"], log=log)
    return {
        "optimizer": (best_coeffs, best_fitness),
        "ps_merge": merged,
        "ps_accuracy": acc,
        "ps_mgsm": mgsm,
        "hybrid": (champion, metrics),
        "pipeline": pipeline,
        "pipeline_champion": pipeline_champion,
        "models": (m1, m2, m3),
    }


def main() -> None:
    from mergekit_evo.quiet import quiet_libraries

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generations", type=int, default=1)
    ap.add_argument("--population", type=int, default=4)
    ap.add_argument("--samples", type=int, default=4, help="benchmark questions per score")
    ap.add_argument("--out", type=Path, default=Path("runs/api-seed-style"))
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per trial")
    args = ap.parse_args()
    quiet_libraries()  # lm-eval and transformers chatter off (the CLI does the same)
    r = seed_style(args.generations, args.population, args.samples, args.out,
                   log=print if args.verbose else None)  # fmt: skip
    x, f = r["optimizer"]
    print(f"CMAESOptimizer: best coeffs {np.round(x, 3).tolist()}, fitness {f:.4f}")
    _, coeffs, fitness = r["ps_merge"]
    print(f"ps_merge_with_cmaes: coeffs {np.round(coeffs, 3).tolist()}, fitness {fitness:.3f}")
    print(f"  GSM8K test accuracy {r['ps_accuracy']:.3f}, MGSM-JA {r['ps_mgsm']['accuracy']:.3f}")
    _, metrics = r["hybrid"]
    keys = ("baseline_fitness", "ps_best_fitness", "champion_fitness", "fitness_gain")
    print("hybrid_merge:", json.dumps({k: _round(metrics[k]) for k in keys}))
    print(f"  fitness_improvement {_round(metrics['fitness_improvement'])}, {metrics['run_dir']}")
    m = r["pipeline"].get_metrics()
    print(f"Phase2Pipeline: fitness_gain {_round(m['fitness_gain'])}, run {m['run_dir']}")


def _round(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v


if __name__ == "__main__":
    main()
