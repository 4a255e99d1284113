"""Generic CMA-ES over n coefficients, through the same Optuna ask/tell path as the search.

For merges scored by any Python function (or anything else): ``cma_optimize(f, n)`` maximises
``f(x)`` (or minimises with ``maximize=False``) with the paper's defaults - start 0.5, sigma0
1/6, population 4 + floor(3 ln n), bounds [0, 1] - and optional normalisation of the
coefficients to sum 1 (applied before ``f`` sees them, and to the returned best).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mergekit_evo.space.vector import Dim, VectorSpace, default_population_size


@dataclass
class OptimizeResult:
    """Best coefficients and how the run went."""

    x: np.ndarray
    fitness: float
    evaluations: int
    generations: int
    stop_reason: str
    history: list[float] = field(default_factory=list)  # best-so-far after each generation


def _normalise(x: np.ndarray) -> np.ndarray:
    s = float(np.sum(x))
    return x / s if s > 0 else np.full_like(x, 1.0 / len(x))


def cma_optimize(
    fn: Callable[[np.ndarray], float],
    n: int,
    *,
    x0: float | Sequence[float] = 0.5,
    sigma0: float = 1 / 6,
    bounds: tuple[float, float] | Sequence[tuple[float, float]] = (0.0, 1.0),
    population_size: int | None = None,
    max_generations: int = 100,
    max_evaluations: int | None = None,
    target_fitness: float | None = None,
    tolerance: float | None = 1e-10,
    patience: int | None = None,
    seed: int = 0,
    normalize: bool = False,
    maximize: bool = True,
) -> OptimizeResult:
    """CMA-ES (Optuna ``CmaEsSampler``) over ``n`` bounded coefficients.

    Stops after ``max_generations`` (or ``max_evaluations`` calls of ``fn``, the start point
    included, whichever comes first; a generation may end part-way); when the best reaches
    ``target_fitness``; when a whole generation's values lie within ``tolerance`` of each other
    (converged); or after ``patience`` generations without improving the best.
    """
    import optuna

    if n < 1:
        raise ValueError("n must be >= 1")
    if max_evaluations is not None and max_evaluations < 1:
        raise ValueError(f"max_evaluations must be >= 1, got {max_evaluations}")
    xs = [float(x0)] * n if np.isscalar(x0) else [float(v) for v in x0]  # type: ignore[arg-type]
    bs = [tuple(bounds)] * n if np.isscalar(bounds[0]) else [tuple(b) for b in bounds]  # type: ignore[arg-type]
    if len(xs) != n or len(bs) != n:
        raise ValueError("x0 and bounds need one entry per coefficient")
    dims = [
        Dim(f"x{i:04d}", float(lo), float(hi), float(np.clip(v, lo, hi)))
        for i, (v, (lo, hi)) in enumerate(zip(xs, bs, strict=True))  # type: ignore[misc]
    ]
    vec = VectorSpace(dims, sigma0=sigma0, cma=True)
    pop = population_size or default_population_size(n)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.CmaEsSampler(
        seed=seed, popsize=pop, n_startup_trials=1, warn_independent_sampling=False
    )
    study = optuna.create_study(sampler=sampler, direction="maximize" if maximize else "minimize")
    study.enqueue_trial(vec.start_params())  # told first, so every later batch is CMA-ES

    sign = 1.0 if maximize else -1.0
    best_x: np.ndarray | None = None
    best = -math.inf
    history: list[float] = []
    evals = 0
    stale = 0

    def step() -> list[float]:
        nonlocal best_x, best, evals
        trial = study.ask()
        x = vec.from_trial(trial)
        if normalize:
            x = _normalise(x)
        y = float(fn(x))
        evals += 1
        study.tell(trial, y)
        if sign * y > best:
            best, best_x = sign * y, x
        return [y]

    def left() -> int:
        return pop if max_evaluations is None else min(pop, max_evaluations - evals)

    step()  # the start point
    reason = f"max_generations {max_generations} reached"
    gen = 0
    for gen in range(1, max_generations + 1):  # noqa: B007 - gen is reported
        if left() <= 0:
            gen -= 1
            reason = f"max_evaluations {max_evaluations} reached"
            break
        before = best
        ys = [step()[0] for _ in range(left())]
        history.append(sign * best)
        if target_fitness is not None and sign * best >= sign * target_fitness:
            reason = "target fitness reached"
            break
        if tolerance is not None and len(ys) == pop and max(ys) - min(ys) <= tolerance:
            reason = f"converged: generation spread <= {tolerance}"
            break
        stale = 0 if best > before else stale + 1
        if patience is not None and stale >= patience:
            reason = f"patience: {patience} generations without improvement"
            break
    assert best_x is not None
    return OptimizeResult(best_x, sign * best, evals, gen, reason, history)
