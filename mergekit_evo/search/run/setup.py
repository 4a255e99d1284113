"""A search's set-up, in the order the runner calls it: everything that can fail on a bad
config first (:func:`prepare`, nothing written), then the run directory (:func:`create`),
recovery of a killed run (:func:`recover`), and per stage its study, baselines and context.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mergekit_evo.config import ConfigError
from mergekit_evo.search.fleet.budget import counted
from mergekit_evo.search.fleet.recovery import recover_interrupted
from mergekit_evo.search.fleet.storage import make_storage, study_names_in
from mergekit_evo.search.run.baselines import baselines
from mergekit_evo.search.run.context import RunContext
from mergekit_evo.search.run.identity import check_same_search
from mergekit_evo.search.run.stages import stage_budgets
from mergekit_evo.search.run.start_recipes import check_start_recipes
from mergekit_evo.search.rundir.events import ResumeLine
from mergekit_evo.search.rundir.model_fingerprint import check_same_models, model_fingerprints
from mergekit_evo.search.scoring.evaluation import CandidateEvaluator
from mergekit_evo.search.stage.context import OnBest, StageContext
from mergekit_evo.search.stage.starts import AfterStarts
from mergekit_evo.search.stage.stopping import StopRule
from mergekit_evo.search.stage.study import make_sampler, open_study

if TYPE_CHECKING:
    import optuna

    from mergekit_evo.candidate.base import CandidateBuilder
    from mergekit_evo.config import OptimizerConfig, SearchConfig
    from mergekit_evo.space.base import Space


def make_builder(cfg: SearchConfig) -> CandidateBuilder:
    """The one place the candidate builder (recipe -> scoreable model) is chosen:
    ``candidates: auto`` builds in accelerator memory on CUDA, on disk elsewhere."""
    from mergekit_evo.candidate import make_builder as make

    return make(cfg.candidates, cfg.device, cfg.dtype, cfg.merge_seed, cfg.trust_remote_code)


def prepare(run: RunContext) -> None:
    """Everything that can fail on a bad config, before anything is written."""
    from mergekit_evo.preflight import check_device, preflight
    from mergekit_evo.search.scoring.callable_scoring import make_scorer

    cfg = run.cfg
    bad_device = check_device(cfg.device)
    if bad_device:
        raise ConfigError(bad_device)
    preflight(cfg)  # model folders, weight headers, tokenizers, spaces: no weights
    check_same_search(run.rundir, cfg)
    check_same_models(run.remembered("models"), cfg)
    check_start_recipes(cfg)
    run.scorer = make_scorer(cfg.fitness, cfg.device, fn=run.fitness_fn, confirm=cfg.confirm)
    if cfg.report is not None:  # fail now, not after the search, on a bad report task
        run.report_scorer = make_scorer(cfg.report, cfg.device, report=True)
    if run.builder is None:
        run.builder = make_builder(cfg)


def create(run: RunContext) -> None:
    """The run directory, its config.yml and run.json (rewritten by the search, kept by a
    worker), and the storage of its studies."""
    rundir, cfg = run.rundir, run.cfg
    rundir.create()
    if not rundir.config.exists():
        rundir.write_yaml(rundir.config, cfg.model_dump(mode="json", exclude_none=True))
    if run.leader or not rundir.run_info.exists():
        ps_budget, dfs_budget = stage_budgets(cfg)
        budgets = {"ps": ps_budget, "dfs": dfs_budget}
        names = run.study_names()
        rundir.write_json(
            rundir.run_info,
            {
                "storage": run.storage_url,
                "studies": names,
                "mode": cfg.mode,
                "merge_seed": cfg.merge_seed,
                "max_trials": {k: budgets[k.split(":")[0]] for k in names},
                # the weights the first run scored on; kept on every later start
                "models": run.remembered("models") or model_fingerprints(cfg),
            },
        )
    run.storage = make_storage(run.storage_url)


def recover(run: RunContext) -> None:
    """Trials left RUNNING by a run killed earlier: failed and asked again (owner only)."""
    import optuna

    assert run.storage is not None
    for name in study_names_in(run.storage, list(run.study_names().values())):
        study = optuna.load_study(study_name=name, storage=run.storage)
        dead = recover_interrupted(study, all_running=True)
        if dead:
            run.log(f"resume: {len(dead)} interrupted trial(s) failed and re-queued: {dead}")


def _optimizer(run: RunContext) -> OptimizerConfig:
    opt = run.cfg.optimizer
    if not run.leader:
        # its own random stream: with the search's seed, two workers asking before the first
        # trial completes (CMA-ES samples independently then) would draw the same point
        opt = opt.model_copy(update={"seed": int.from_bytes(os.urandom(4), "little")})
    return opt


def open_stage(run: RunContext, stage: str, space: Space) -> optuna.Study:
    """The stage's study, with this process's sampler (while standard start points are
    scored, one that proposes nothing: they come from the queue) and, with
    ``fitness.fidelity``, the multi-fidelity pruner."""
    import optuna

    from mergekit_evo.search.stage.pruning import IncumbentBoundPruner

    assert run.storage is not None
    n_obj = run.scorer.n_objectives if run.scorer else 1
    opt = _optimizer(run)
    fidelity = run.cfg.fitness.fidelity
    if run.cfg.start_points.enabled:
        sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=opt.seed)
    else:
        sampler = make_sampler(opt, len(space.vector), n_obj, prune=fidelity is not None)
    pruner = IncumbentBoundPruner(fidelity.z) if fidelity is not None else None
    study = open_study(run.storage, run.study_names()[stage], sampler, n_obj, pruner)
    done, _ = counted(study.get_trials(deepcopy=False))
    if done:  # a progress bar over the budget counts the study's trials, not this process's
        run.log(
            ResumeLine(
                f"resume ({stage}): {done} trial(s) of the budget already finished",
                stage=stage,
                done=done,
            )
        )
    return study


def after_starts(run: RunContext, space: Space) -> AfterStarts | None:
    """The sampler a stage switches to once its start points are scored: CMA-ES from the best,
    its step ``start_points.sigma0`` (None: optimizer.sigma0) in CMA-ES's scaled units."""
    cfg = run.cfg
    if not cfg.start_points.enabled:
        return None
    opt = _optimizer(run)
    n_obj = run.scorer.n_objectives if run.scorer else 1
    prune = cfg.fitness.fidelity is not None
    # a coordinate's Optuna range is 6 * optimizer.sigma0 of its bounds (space/vector.py), and
    # CMA-ES scales each range to [0, 1]: a step s of the bounds is s / (6 * sigma0) there
    step = (cfg.start_points.sigma0 or opt.sigma0) / (6 * opt.sigma0)

    def sampler(x0: dict[str, float]) -> optuna.samplers.BaseSampler:
        return make_sampler(
            opt, len(space.vector), n_obj, x0=x0 or None, sigma0=step if x0 else None, prune=prune
        )

    return sampler


def source_baselines(run: RunContext, meta: optuna.Study) -> dict[str, float]:
    """Fitness of each source model (kept in the study, so resume does not rescore)."""
    return baselines(
        meta,
        run.cfg.models,
        run.builder,
        run.scorer,
        score=bool(run.cfg.baselines) and run.leader,
        log=run.log,
    )


def wait_for_workers(run: RunContext, study: optuna.Study) -> None:
    """Start the first stage with every local worker ready, so the work is shared from the
    first trial on (and a throughput measurement does not count their start-up)."""
    if run.fleet is not None:
        run.fleet.wait_ready(study)


def stage_context(
    run: RunContext,
    study: optuna.Study,
    space: Space,
    stop: StopRule,
    *,
    prefix: str,
    on_best: OnBest,
    elapsed_offset_s: float = 0.0,
) -> StageContext:
    """One stage's context.  ``owner`` is False: recovery of a killed run happened in
    :func:`recover`, before any worker started."""
    assert run.builder is not None and run.scorer is not None
    from mergekit_evo.space.starts import start_points

    return StageContext(
        study,
        space,
        CandidateEvaluator(run.builder, run.scorer, run.log),
        run.rundir,
        stop,
        prefix=prefix,
        owner=False,
        leader=run.leader,
        on_best=on_best,
        log=run.log,
        elapsed_offset_s=elapsed_offset_s,
        worker=run.worker,
        starts=start_points(space) if run.cfg.start_points.enabled else None,
        after_starts=after_starts(run, space),
    )
