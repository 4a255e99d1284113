"""MergeKit's own CMA-ES settings (``mergekit-evolve``) on a planted PS problem, same budget.

What is MergeKit's here: the genome (``mergekit.evo.genome.ModelGenome``: its x0 from
``initial_genotype()`` = 1 / n_models per weight, its decoding ``genotype_merge_config`` with
``abs()`` on weights and no bounds), ``sigma0 = 1/6`` (``mergekit-evolve``'s default) and pycma's
default population (4 + floor(3 ln n)), driven through ``cma`` ask/tell as ``cma.fmin2`` does.
What is not: ``mergekit-evolve``'s Ray evaluation strategies (``mergekit.evo.strategy`` needs
``ray`` to import; scoring here is the same in-process builder and fitness the project's search
uses) and the genome's ``dtype: bfloat16`` (replaced by float32 so both optimisers score the
very same fitness function as the planted optimum).  The budget is enforced per evaluation:
a generation cut short by the budget is not told to CMA-ES.

Why the RNG guard: pycma draws its samples from numpy's *global* RNG, and building a candidate
reseeds it (MergeKit's ``run_merge`` calls ``set_seed(random_seed)`` for DARE's reproducible
masks), so without the guard every CMA-ES generation would draw the very same normal vectors.
(Scoring restores the caller's RNG states itself.)  In ``mergekit-evolve`` candidates are built
and scored in Ray workers, so its pycma never sees that reseeding; the guard restores the same
situation in one process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mergekit_evo.fitness.evaluator import keep_global_rng
from mergekit_evo.planted.problem import PlantedProblem
from mergekit_evo.planted.search import Trial


@dataclass
class BaselineRun:
    """The evaluations of one pycma run, in order."""

    trials: list[Trial]
    seconds: float
    popsize: int
    x0: list[float]
    sigma0: float


def mergekit_genome(problem: PlantedProblem) -> Any:
    """``mergekit.evo.genome.ModelGenome`` for task_arithmetic over ft1, ft2 on the base."""
    from mergekit.evo.genome import ModelGenome, ModelGenomeDefinition

    definition = ModelGenomeDefinition(
        models=[problem.models["ft1"], problem.models["ft2"]],
        merge_method="task_arithmetic",
        base_model=problem.base,
    )
    return ModelGenome(definition)


def genome_recipe(genome: Any, x: Any) -> dict[str, Any]:
    """MergeKit's config for genotype ``x``, as a dict, with float32 instead of bfloat16."""
    import yaml

    doc = yaml.safe_load(genome.genotype_merge_config(x).to_yaml())
    doc["dtype"] = "float32"
    return doc


def run_mergekit_cma(
    problem: PlantedProblem, workdir: str | Path, budget: int, seed: int
) -> BaselineRun:
    """pycma with ``mergekit-evolve``'s settings on ``problem`` for ``budget`` evaluations."""
    import shutil

    import cma

    from mergekit_evo.candidate.disk import DiskCandidateBuilder
    from mergekit_evo.fitness import FitnessEvaluator

    genome = mergekit_genome(problem)
    x0 = genome.initial_genotype(random=False).view(-1).numpy()
    sigma0 = 1 / 6  # mergekit-evolve --sigma0 default
    evaluator = FitnessEvaluator(problem.fitness_spec())
    builder = DiskCandidateBuilder(dtype="float32")
    work = Path(workdir)
    # pycma: seed 0 means "random", so seeds are shifted by one
    es = cma.CMAEvolutionStrategy(x0, sigma0, {"seed": seed + 1, "verbose": -9})
    trials: list[Trial] = []
    t0 = time.monotonic()
    while len(trials) < budget and not es.stop():
        xs = es.ask()
        costs = []
        for x in xs:
            if len(trials) == budget:
                break
            recipe = genome_recipe(genome, x)
            with keep_global_rng():
                cand = builder.build(recipe, work / f"{len(trials):05d}")
                try:
                    fit = evaluator.score(cand.model, cand.tokenizer).score
                finally:
                    builder.release(cand)
                    shutil.rmtree(work / f"{len(trials):05d}", ignore_errors=True)
            trials.append(Trial(len(trials) + 1, "mergekit-cma", fit, recipe))
            costs.append(-fit)  # mergekit-evolve minimises -score
        if len(costs) == len(xs):
            es.tell(xs, costs)
    return BaselineRun(trials, time.monotonic() - t0, int(es.popsize), x0.tolist(), sigma0)
