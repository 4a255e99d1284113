"""A whole search: set-up, baselines, the PS and/or DFS stages, then the run's outputs.

``run_search`` is what ``mergekit-evo search`` and ``mergekit-evo worker`` call.  Order matters
for "nothing half-written": the config is validated and the fitness tasks are built before
the run directory is created; only then is anything written or any model loaded.  The pieces
live in their own modules (:mod:`.identity`, :mod:`.start_recipes`, :mod:`.baselines`,
:mod:`.stages`, :mod:`.outputs`, :mod:`.report_scores`); this one only orders them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mergekit_evo.config import SearchConfig
from mergekit_evo.search.fleet.recovery import recover_interrupted
from mergekit_evo.search.fleet.storage import heartbeat_interval_s, make_storage, study_names_in
from mergekit_evo.search.fleet.workers import Worker
from mergekit_evo.search.run.baselines import baselines
from mergekit_evo.search.run.identity import apply_overrides, check_same_search
from mergekit_evo.search.run.outputs import Outputs, trial_counts, write_pareto
from mergekit_evo.search.run.stages import dfs_base_recipes, run_dfs_stage, stage_budgets, stop_rule
from mergekit_evo.search.run.start_recipes import check_start_recipes
from mergekit_evo.search.rundir.files import RunDir
from mergekit_evo.search.rundir.model_fingerprint import check_same_models, model_fingerprints
from mergekit_evo.search.scoring.failures import FAILURE_STOP, SearchFailed, failure_message
from mergekit_evo.search.stage.loop import Evaluation, Log, best_trial, run_stage
from mergekit_evo.search.stage.study import make_sampler, open_study

if TYPE_CHECKING:
    import optuna

    from mergekit_evo.candidate.base import CandidateBuilder
    from mergekit_evo.search.fleet.processes import Fleet
    from mergekit_evo.search.scoring.callable_scoring import CallableScorer, FitnessFn
    from mergekit_evo.search.scoring.scorer import Scorer
    from mergekit_evo.space.base import Space

__all__ = ["Search", "SearchResult", "apply_overrides", "run_search"]


@dataclass
class SearchResult:
    """What a finished (or stopped) search returns."""

    rundir: Path
    best_recipe: dict[str, Any] | None
    metrics: dict[str, Any]
    champion_path: Path | None


class Search:
    """State shared by the stages of one search process."""

    def __init__(
        self,
        cfg: SearchConfig,
        out: str | Path,
        *,
        save_champion: bool = False,
        role: str = "search",
        builder: CandidateBuilder | None = None,
        log: Log = print,
        fitness_fn: FitnessFn | None = None,
        fleet: Fleet | None = None,
    ) -> None:
        self.cfg = cfg
        self.fitness_fn = fitness_fn  # a Python fitness in place of lm-eval tasks
        self.rundir = RunDir(out)
        self.outputs = Outputs(self.rundir, cfg.merge_seed, save_champion)
        self.save_champion = save_champion
        self.role = role
        self.leader = role == "search"  # enqueues start points, scores baselines, picks moves
        self.log = log
        self.fleet = fleet  # the other local worker processes this one starts (--gpus)
        self.worker = Worker.this_process(role, cfg.device)
        self.builder = builder
        self.scorer: Scorer | CallableScorer | None = None
        self.report_scorer: Scorer | CallableScorer | None = None
        remembered = self._remembered_storage()
        self.storage_url = cfg.storage or remembered or self.rundir.default_storage
        # the run directory's own storage: nothing else runs on it before this process starts
        # its workers, so trials RUNNING then are dead
        embedded = (self.rundir.default_storage, self.rundir.legacy_storage)
        self.owner = self.leader and self.storage_url in embedded
        self.two_stage = cfg.mode == "ps_dfs"
        self.started = datetime.now()  # failed trials in a row are counted from here

    def _remembered(self, key: str) -> Any:
        """A field of the first run's ``run.json`` (None for a new run directory)."""
        info = self.rundir.run_info
        if not info.exists():
            return None
        try:
            return json.loads(info.read_text()).get(key)
        except (OSError, ValueError):
            return None

    def _remembered_storage(self) -> str | None:
        """A rerun without ``--storage`` resumes where the first run kept its study."""
        return self._remembered("storage")

    # -- setup ------------------------------------------------------------------------------

    def make_builder(self) -> CandidateBuilder:
        """The one place the candidate builder (recipe -> scoreable model) is chosen:
        ``candidates: auto`` builds in accelerator memory on CUDA, on disk elsewhere."""
        from mergekit_evo.candidate import make_builder

        cfg = self.cfg
        return make_builder(
            cfg.candidates, cfg.device, cfg.dtype, cfg.merge_seed, cfg.trust_remote_code
        )

    def prepare(self) -> None:
        """Everything that can fail on a bad config, before anything is written."""
        from mergekit_evo.preflight import preflight
        from mergekit_evo.search.scoring.callable_scoring import make_scorer

        preflight(self.cfg)  # model folders, weight headers, tokenizers, spaces: no weights
        check_same_search(self.rundir, self.cfg)
        check_same_models(self._remembered("models"), self.cfg)
        check_start_recipes(self.cfg)
        self.scorer = make_scorer(self.cfg.fitness, self.cfg.device, fn=self.fitness_fn)
        if self.cfg.report is not None:  # fail now, not after the search, on a bad report task
            self.report_scorer = make_scorer(self.cfg.report, self.cfg.device, report=True)
        if self.builder is None:
            self.builder = self.make_builder()

    def create(self) -> None:
        self.rundir.create()
        if not self.rundir.config.exists():
            self.rundir.write_yaml(
                self.rundir.config, self.cfg.model_dump(mode="json", exclude_none=True)
            )
        if self.leader or not self.rundir.run_info.exists():
            ps_budget, dfs_budget = stage_budgets(self.cfg)
            budgets = {"ps": ps_budget, "dfs": dfs_budget}
            self.rundir.write_json(
                self.rundir.run_info,
                {
                    "storage": self.storage_url,
                    "studies": self.study_names(),
                    "mode": self.cfg.mode,
                    "merge_seed": self.cfg.merge_seed,
                    "max_trials": {k: budgets[k] for k in self.study_names()},
                    # the weights the first run scored on; kept on every later start
                    "models": self._remembered("models") or model_fingerprints(self.cfg),
                },
            )
        self.storage = make_storage(self.storage_url)

    def recover(self) -> None:
        """Trials left RUNNING by a run killed earlier: failed and asked again (owner only)."""
        import optuna

        names = study_names_in(self.storage, list(self.study_names().values()))
        for name in names:
            study = optuna.load_study(study_name=name, storage=self.storage)
            dead = recover_interrupted(study, all_running=True)
            if dead:
                self.log(f"resume: {len(dead)} interrupted trial(s) failed and re-queued: {dead}")

    def study_names(self) -> dict[str, str]:
        name = self.cfg.study_name
        if self.cfg.mode == "ps":
            return {"ps": f"{name}-ps"}
        if self.cfg.mode == "dfs":
            return {"dfs": f"{name}-dfs"}
        return {"ps": f"{name}-ps", "dfs": f"{name}-dfs"}

    def open(self, stage: str, space: Space) -> optuna.Study:
        n_obj = self.scorer.n_objectives if self.scorer else 1
        opt = self.cfg.optimizer
        if not self.leader:
            # its own random stream: with the search's seed, two workers asking before the first
            # trial completes (CMA-ES samples independently then) would draw the same point
            opt = opt.model_copy(update={"seed": int.from_bytes(os.urandom(4), "little")})
        sampler = make_sampler(opt, len(space.vector), n_obj)
        return open_study(self.storage, self.study_names()[stage], sampler, n_obj)

    # -- scoring ----------------------------------------------------------------------------

    def evaluate(self, recipe: dict[str, Any], number: int, workdir: Path) -> Evaluation:
        assert self.builder is not None and self.scorer is not None
        from mergekit_evo.search.scoring.oom import score_with_oom_retry

        cand = self.builder.build(recipe, workdir)
        scorer = self.scorer
        try:
            fitness, values, per_task = score_with_oom_retry(
                lambda bs: scorer.score(cand.model, cand.tokenizer, batch_size=bs),
                scorer.cfg.batch_size,
                self.log,
            )
        finally:
            self.builder.release(cand)
        return Evaluation(fitness=fitness, values=values, per_task=per_task, model_dir=cand.path)

    def baselines(self, meta: optuna.Study) -> dict[str, float]:
        """Fitness of each source model (kept in the study, so resume does not rescore)."""
        return baselines(
            meta,
            self.cfg.models,
            self.builder,
            self.scorer,
            score=bool(self.cfg.baselines) and self.leader,
            log=self.log,
        )

    def wait_for_workers(self, study: optuna.Study) -> None:
        """Start the first stage with every local worker ready, so the work is shared from the
        first trial on (and a throughput measurement does not count their start-up)."""
        if self.fleet is not None:
            self.fleet.wait_ready(study)

    # -- stages -----------------------------------------------------------------------------

    def run(self) -> SearchResult:
        """Validate, then hold RUN_DIR's lock (one live owner) for the whole search."""
        from mergekit_evo.search.fleet.processes import started_by_run
        from mergekit_evo.search.rundir.lock import RunDirLock

        self.prepare()
        if started_by_run():  # a --gpus/--workers child: its parent holds RUN_DIR's lock
            return self._run()
        with RunDirLock(self.rundir.root):
            self.rundir.recover()  # the owner, alone: undo what a killed run left half done
            return self._run()

    def _run(self) -> SearchResult:
        self.create()
        if self.owner:
            self.recover()
        with self.worker.presence(heartbeat_interval_s()):
            if self.fleet is None:
                return self.run_stages()
            self.fleet.start(self.rundir, self.storage_url, self.cfg)
            try:
                return self.run_stages(before_finish=self.fleet.wait)
            except BaseException:
                self.fleet.abort()
                raise

    def run_stages(self, before_finish: Any = None) -> SearchResult:
        """The stages, then (``before_finish`` called, e.g. waiting for workers) the outputs."""
        cfg = self.cfg
        ps_budget, dfs_budget = stage_budgets(cfg)
        studies: list[tuple[str, optuna.Study]] = []
        stop_reasons: dict[str, str] = {}
        ps_best = dfs_best = None
        baseline: dict[str, float] = {}
        # owner=False: recovery of a killed run happened in recover(), before any worker started
        common: dict[str, Any] = dict(
            owner=False, leader=self.leader, log=self.log, worker=self.worker
        )

        if cfg.mode in ("ps", "ps_dfs"):
            from mergekit_evo.space.ps import PSSpace

            space: Space = PSSpace.from_config(cfg)
            study = self.open("ps", space)
            baseline = self.baselines(study)
            self.wait_for_workers(study)
            best_source = max(baseline.values()) if baseline else None
            out = self.outputs
            on_best = out.on_best_ps_stage if self.two_stage else out.on_best_final("ps")
            res = run_stage(
                study,
                space,
                self.evaluate,
                self.rundir,
                stop_rule(cfg, space, ps_budget, best_source, failures_since=self.started),
                prefix="ps-" if self.two_stage else "",
                on_best=on_best,
                **common,
            )
            studies.append(("ps", study))
            stop_reasons["ps"] = res.stop_reason
            self.worker.report(study, f"stopped: {res.stop_reason}")
            ps_best = res.best_fitness

        ps_failed = ps_best is None or stop_reasons.get("ps", "").startswith(FAILURE_STOP)
        if cfg.mode == "dfs" or (cfg.mode == "ps_dfs" and not ps_failed):
            if cfg.mode == "dfs":
                from mergekit_evo.space.dfs import DFSSpace

                space = DFSSpace.from_config(cfg)
                study = self.open("dfs", space)
                baseline = self.baselines(study)
                self.wait_for_workers(study)
            else:
                from mergekit_evo.space.ps_dfs import PSDFSSpace

                recipes = dfs_base_recipes(
                    self.storage,
                    self.study_names()["dfs"],
                    studies[0][1],
                    cfg.ps_dfs.ps_candidates_multiplier or 1,
                    leader=self.leader,
                )
                partner = None
                if not cfg.ps_dfs.ps_candidates_multiplier:
                    partner = cfg.model_path(cfg.ps_dfs.partner or list(cfg.models)[-1])
                space = PSDFSSpace(cfg, recipes, partner)
                study = self.open("dfs", space)
            res = run_dfs_stage(
                study,
                space,
                self.evaluate,
                self.rundir,
                cfg,
                dfs_budget,
                max(baseline.values()) if baseline else None,
                prefix="dfs-" if self.two_stage else "",
                on_best=self.outputs.on_best_final("dfs"),
                elapsed_offset_s=sum(float(s.user_attrs.get("wall_s", 0.0)) for _, s in studies),
                failures_since=self.started,
                **common,
            )
            studies.append(("dfs", study))
            stop_reasons["dfs"] = res.stop_reason
            self.worker.report(study, f"stopped: {res.stop_reason}")
            dfs_best = res.best_fitness

        if before_finish is not None:
            before_finish()
        return self.finish(studies, baseline, ps_best, dfs_best, stop_reasons)

    # -- outputs ----------------------------------------------------------------------------

    def finish(
        self,
        studies: list[tuple[str, optuna.Study]],
        baseline: dict[str, float],
        ps_best: float | None,
        dfs_best: float | None,
        stop_reasons: dict[str, str],
    ) -> SearchResult:
        """The champion (best.yml, champion/), the report-split scores and the summary files."""
        from mergekit_evo.report.metrics import build_metrics, start_fitness
        from mergekit_evo.report.trials_csv import trial_rows
        from mergekit_evo.report.write import write_run_report

        final_study = studies[-1][1]
        # the last stage's best; a stage that asked nothing (e.g. the wall clock ran out during
        # PS in PS+DFS) hands the title to the previous stage's best
        stage, b = studies[-1][0], best_trial(final_study)
        for name, study in reversed(studies[:-1]):
            if b is not None:
                break
            stage, b = name, best_trial(study)
        recipe = b.user_attrs.get("recipe") if b else None
        champion = float(b.user_attrs["fitness"]) if b else None
        summary = dict(
            mode=self.cfg.mode,
            baseline=baseline,
            ps_best=ps_best,
            dfs_best=dfs_best,
            champion=champion,
            champion_trial=b.number if b else None,
            stop_reasons=stop_reasons,
        )
        if not self.leader:  # the search process writes the run's results
            metrics = build_metrics(**summary, n_trials=trial_counts(studies))
            return SearchResult(self.rundir.root, recipe, metrics, None)
        if self.two_stage and (ps := best_trial(studies[0][1])) is not None:
            # another process may have written ps_best.yml last with an older best
            self.outputs.on_best_ps_stage(ps.number, ps.user_attrs["recipe"], _as_eval(ps))
        if b is not None and recipe is not None:
            self.outputs.write_best(recipe, champion or 0.0, b.number, stage)
        champ_path = None
        if self.save_champion and recipe is not None:
            assert self.builder is not None
            champ_path = self.outputs.ensure_champion(
                self.builder, recipe, stage, b.number if b else -1
            )
        if self.scorer is not None and self.scorer.n_objectives > 1:
            write_pareto(self.rundir, final_study)
        rebuilt = self.rebuilt_fitness(recipe) if recipe is not None else None
        report = self.report(recipe) if self.cfg.report is not None and recipe else None
        rows = trial_rows(studies)
        metrics = build_metrics(
            **summary, n_trials=trial_counts(studies), report=report, start=start_fitness(rows)
        )
        if rebuilt is not None:
            metrics["champion_rebuilt_fitness"] = rebuilt
        self.outputs.write_summary(metrics, studies)
        cfg_doc = self.cfg.model_dump(mode="json", exclude_none=True)
        write_run_report(self.rundir.root, metrics, rows, cfg_doc, recipe, log=self.log)
        streak = any(r.startswith(FAILURE_STOP) for r in stop_reasons.values())
        if b is None or streak:  # never "success" on nothing, nor after a run of failures
            completed = sum(n["complete"] for n in trial_counts(studies).values())
            raise SearchFailed(
                failure_message(studies, stop_reasons, completed, str(self.rundir.trials_csv))
            )
        return SearchResult(self.rundir.root, recipe, metrics, champ_path)

    def rebuilt_fitness(self, recipe: dict[str, Any]) -> float | None:
        """The champion as ``best.yml`` rebuilds it, scored again when the search's model was
        not that one (in-memory DARE masks); None when it was."""
        from mergekit_evo.search.run.report_scores import rebuilt_fitness

        exact_for = getattr(self.builder, "exact_for", None)
        if exact_for is None or exact_for(recipe) or self.scorer is None:
            return None
        assert self.builder is not None
        score = rebuilt_fitness(self.scorer, self.builder, recipe, self.rundir.work)
        self.log(
            f"champion rebuilt by mergekit-yaml best.yml --random-seed {self.cfg.merge_seed}: "
            f"fitness {score:.4f} (in-memory DARE masks differ from MergeKit's CPU draws)"
        )
        return score

    def report(self, recipe: dict[str, Any]) -> dict[str, Any]:
        """Report-split scores of each source model and of the champion."""
        from mergekit_evo.search.run.report_scores import report_scores
        from mergekit_evo.search.scoring.callable_scoring import make_scorer

        assert self.cfg.report is not None and self.builder is not None
        scorer = self.report_scorer or make_scorer(self.cfg.report, self.cfg.device, report=True)
        return report_scores(
            scorer,
            self.builder,
            self.cfg.models,
            recipe,
            self.rundir.champion,
            self.rundir.work / "report",
        )


def _as_eval(t: optuna.trial.FrozenTrial) -> Evaluation:
    return Evaluation(fitness=float(t.user_attrs["fitness"]), values=list(t.values or []))


def run_search(
    cfg: SearchConfig,
    out: str | Path,
    *,
    save_champion: bool = False,
    role: str = "search",
    builder: CandidateBuilder | None = None,
    log: Log = print,
    fitness_fn: FitnessFn | None = None,
    fleet: Fleet | None = None,
) -> SearchResult:
    """Run (or resume) a search; ``role='worker'`` joins a shared study without baselines
    and writes no results; ``fleet`` starts more local worker processes on the same study.

    ``fitness_fn(model, tokenizer) -> float | dict`` scores candidates instead of
    ``fitness.tasks`` (see :mod:`mergekit_evo.search.scoring.callable_scoring`); config.yml records
    its name as ``fitness.function``, so a resume with another function is refused.
    """
    if fitness_fn is not None and fleet is not None and len(fleet.gpus) > 1:
        raise ValueError("worker processes cannot run a Python fitness_fn: use fitness.tasks")
    if fitness_fn is not None and cfg.fitness.function is None:
        from mergekit_evo.search.scoring.callable_scoring import function_name

        named = cfg.fitness.model_copy(update={"function": function_name(fitness_fn)})
        cfg = cfg.model_copy(update={"fitness": named})
    search = Search(
        cfg, out, save_champion=save_champion, role=role, builder=builder, log=log,
        fitness_fn=fitness_fn, fleet=fleet,
    )  # fmt: skip
    return search.run()
