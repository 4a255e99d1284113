"""Optuna plumbing: storage (SQLite in the run dir, or any URL), samplers, crash recovery.

Why ask/tell and these details (measured on optuna 5.0):
- ``CmaEsSampler(x0=, sigma0=)`` are deprecated; :mod:`mergekit_evo.space.vector` shapes the
  distributions so the sampler's defaults are our start point and sigma instead.
- ``CmaEsSampler`` samples independently (random) until one trial is complete, so the start
  point is enqueued and told first; after that every proposal is a CMA-ES sample.
- Optuna keeps the pickled CMA state in trial system attrs, so a study reopened after SIGKILL
  continues the same generation.  Trials left RUNNING by a dead process are failed here (with
  a reason) and their parameters enqueued again, so no proposal is lost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mergekit_evo.config import OptimizerConfig

if TYPE_CHECKING:
    import optuna

HEARTBEAT_INTERVAL_S = 30
GRACE_PERIOD_S = 120
INTERRUPTED = "interrupted: the process running this trial died before it finished"


def storage_url(url: str) -> str:
    """Pick an installed PostgreSQL driver for a bare ``postgresql://`` URL.

    SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3, while the ``postgres`` extra installs
    psycopg2; use whichever is importable.
    """
    import importlib.util

    if url.startswith("postgresql://") or url.startswith("postgres://"):
        rest = url.split("://", 1)[1]
        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
            return f"postgresql+psycopg2://{rest}"
        return f"postgresql://{rest}"
    return url


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """An RDB storage with heartbeats, so workers on other hosts can detect dead trials."""
    import optuna

    url = storage_url(url)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_INTERVAL_S,
            grace_period=GRACE_PERIOD_S,
        )


def make_sampler(
    opt: OptimizerConfig, n_dims: int, n_objectives: int = 1
) -> optuna.samplers.BaseSampler:
    """Sampler by name; CMA-ES gets the paper's population default (4 + floor(3 ln n))."""
    import warnings

    import optuna

    from mergekit_evo.space.vector import default_population_size

    if opt.sampler == "cmaes":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.CmaEsSampler(
                seed=opt.seed,
                popsize=opt.population_size or default_population_size(n_dims),
                n_startup_trials=1,
                use_separable_cma=opt.separable,
                lr_adapt=opt.lr_adapt,
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
) -> optuna.Study:
    """Create or reopen a study (maximising every objective); ``sampler`` None: read-only use."""
    import optuna

    return optuna.create_study(
        storage=storage,
        study_name=name,
        sampler=sampler,
        directions=["maximize"] * n_objectives,
        load_if_exists=True,
    )


def recover_interrupted(study: optuna.Study, all_running: bool) -> list[int]:
    """Fail trials whose process died and enqueue their parameters again.

    ``all_running``: the caller owns the study alone (the default SQLite run dir), so every
    RUNNING trial is dead; otherwise only trials whose heartbeat went stale are.
    """
    from optuna.trial import TrialState

    storage = study._storage
    if all_running:
        stale = [
            t._trial_id for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        ]
    else:
        stale = list(storage._get_stale_trial_ids(study._study_id))  # type: ignore[attr-defined]
    by_id = {t._trial_id: t for t in study.get_trials(deepcopy=False)}
    recovered = []
    for tid in stale:
        t = by_id.get(tid)
        if t is None:
            continue
        try:
            storage.set_trial_user_attr(tid, "fail_reason", INTERRUPTED)
            storage.set_trial_user_attr(tid, "interrupted", True)
            if not storage.set_trial_state_values(tid, state=TrialState.FAIL):
                continue
        except Exception:  # another process got there first
            continue
        if t.params:
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
        recovered.append(t.number)
    return recovered


@contextmanager
def heartbeat(study: optuna.Study, trial: optuna.trial.Trial) -> Iterator[None]:
    """Record the trial's heartbeat while it runs (lets other hosts spot a dead worker)."""
    storage = study._storage
    record = getattr(storage, "record_heartbeat", None)
    if record is None or getattr(storage, "heartbeat_interval", None) is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                record(trial._trial_id)
            except Exception:
                pass
            if stop.wait(HEARTBEAT_INTERVAL_S):
                return

    th = threading.Thread(target=beat, daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join(timeout=5)
