"""One planted problem per kind per test session, built in a temp folder.

Smaller than the benchmark's (64 sampled texts instead of 128) to keep CI short; the properties
tested (optimum at the planted recipe, recovery within a loose tolerance) do not depend on it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mergekit_evo.planted.problem import PlantedProblem, ProblemSettings, build_problem

SETTINGS = ProblemSettings(n_texts=64)


@pytest.fixture(scope="session")
def planted_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("planted")


@pytest.fixture(scope="session")
def ps_problem(planted_root: Path) -> PlantedProblem:
    return build_problem(planted_root, "ps", SETTINGS)


@pytest.fixture(scope="session")
def dfs_problem(planted_root: Path) -> PlantedProblem:
    return build_problem(planted_root, "dfs", SETTINGS)


@pytest.fixture(scope="session")
def scorer(ps_problem: PlantedProblem):  # -> Callable[[PlantedProblem, dict], float]
    """Build a recipe on disk and score it on a problem's planted task."""
    import shutil

    from mergekit_evo.candidate.disk import DiskCandidateBuilder
    from mergekit_evo.fitness import FitnessEvaluator

    evaluators: dict[str, FitnessEvaluator] = {}
    builder = DiskCandidateBuilder(dtype="float32")
    count = iter(range(10**6))

    def score(problem: PlantedProblem, recipe: dict) -> float:
        if problem.kind not in evaluators:
            evaluators[problem.kind] = FitnessEvaluator(problem.fitness_spec())
        # a fresh folder per build (a reused ps_dfs output path is read stale from MergeKit's
        # LoaderCache)
        work = problem.root / "test-work" / f"{next(count):04d}"
        cand = builder.build(recipe, work)
        try:
            return evaluators[problem.kind].score(cand.model, cand.tokenizer).score
        finally:
            builder.release(cand)
            shutil.rmtree(work, ignore_errors=True)

    return score
