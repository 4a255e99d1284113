"""Optuna studies of a search: samplers, the generation size, opening a stage's study.

Storages live in :mod:`mergekit_evo.search.fleet.storage`, crash recovery in
:mod:`mergekit_evo.search.fleet.recovery`.

Why ask/tell and these details (measured on optuna 5.0):
- ``CmaEsSampler(x0=, sigma0=)`` are deprecated; :mod:`mergekit_evo.space.vector` shapes the
  distributions so the sampler's defaults are our start point and sigma instead.
- ``CmaEsSampler`` samples independently (random) until one trial is complete, so the start
  point is enqueued and told first; after that every proposal is a CMA-ES sample.
- Optuna keeps the pickled CMA state in trial system attrs, so a study reopened after SIGKILL
  continues the same generation (dead trials: :mod:`mergekit_evo.search.fleet.recovery`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mergekit_evo.config import OptimizerConfig

if TYPE_CHECKING:
    import optuna


def make_sampler(
    opt: OptimizerConfig,
    n_dims: int,
    n_objectives: int = 1,
    x0: dict[str, float] | None = None,
    sigma0: float | None = None,
    prune: bool = False,
) -> optuna.samplers.BaseSampler:
    """Sampler by name; CMA-ES gets the paper's population default (4 + floor(3 ln n)).

    ``x0`` / ``sigma0``: CMA-ES's start (Optuna parameters) and step in its [0, 1]-scaled space,
    set from the best standard start point (:mod:`.starts`). Optuna 5 deprecates the two
    arguments (removal announced for 6.0, hence ``optuna<6``); the distributions' shape cannot
    carry them here, because the start points were asked on those same distributions.
    ``prune``: pruned trials count with their last rung's fitness (multi-fidelity scoring), so
    a generation is not short of the candidates the pruner stopped.
    """
    import warnings

    import optuna

    from mergekit_evo.space.vector import default_population_size

    if opt.sampler == "cmaes":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", FutureWarning)  # x0 / sigma0 (see above)
            return optuna.samplers.CmaEsSampler(
                x0=x0,
                sigma0=sigma0,
                seed=opt.seed,
                popsize=opt.population_size or default_population_size(n_dims),
                n_startup_trials=1,
                use_separable_cma=opt.separable,
                lr_adapt=opt.lr_adapt,
                consider_pruned_trials=prune,
                warn_independent_sampling=False,
            )
    if opt.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=opt.seed, multivariate=True)
    if opt.sampler == "nsgaii":
        return optuna.samplers.NSGAIISampler(
            seed=opt.seed, population_size=opt.population_size or 50
        )
    return optuna.samplers.RandomSampler(seed=opt.seed)


def population_size(opt: OptimizerConfig, n_dims: int) -> int:
    """The generation size used for patience (CMA-ES lambda, else the configured size)."""
    from mergekit_evo.space.vector import default_population_size

    if opt.population_size:
        return opt.population_size
    return default_population_size(n_dims) if opt.sampler != "nsgaii" else 50


def open_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    sampler: optuna.samplers.BaseSampler | None,
    n_objectives: int = 1,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Create or reopen a study (maximising every objective); ``sampler`` None: read-only use.
    ``pruner`` None: never prune (Optuna's default pruner would stop trials on its own rule)."""
    import optuna

    return optuna.create_study(
        storage=storage,
        study_name=name,
        sampler=sampler,
        pruner=pruner or optuna.pruners.NopPruner(),
        directions=["maximize"] * n_objectives,
        load_if_exists=True,
    )
