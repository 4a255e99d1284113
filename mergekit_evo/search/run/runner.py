"""A whole search: set-up, baselines, the PS and/or DFS stages, then the run's outputs.

``run_search`` is what ``mergekit-evo search`` and ``mergekit-evo worker`` call.  Order matters
for "nothing half-written": the config is validated and the fitness tasks are built before
the run directory is created; only then is anything written or any model loaded.  This module
only orders the steps: the set-up lives in :mod:`.setup`, the run's shared state in
:mod:`.context`, each stage in :mod:`mergekit_evo.search.stage`, the end in :mod:`.finish`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mergekit_evo.config import SearchConfig
from mergekit_evo.search.fleet.storage import heartbeat_interval_s
from mergekit_evo.search.run import setup
from mergekit_evo.search.run.context import RunContext
from mergekit_evo.search.run.finish import SearchResult, finish
from mergekit_evo.search.run.identity import apply_overrides
from mergekit_evo.search.run.stages import dfs_base_recipes, stage_budgets, stop_rule
from mergekit_evo.search.scoring.evaluation import Evaluation
from mergekit_evo.search.scoring.failures import FAILURE_STOP
from mergekit_evo.search.stage.context import Log
from mergekit_evo.search.stage.dfs_stage import run_dfs_stage
from mergekit_evo.search.stage.loop import StageResult, run_stage

if TYPE_CHECKING:
    import optuna

    from mergekit_evo.candidate.base import CandidateBuilder
    from mergekit_evo.search.fleet.processes import Fleet
    from mergekit_evo.search.scoring.callable_scoring import FitnessFn
    from mergekit_evo.space.base import Space

__all__ = ["Search", "SearchResult", "apply_overrides", "run_search"]


class Search:
    """One search process: its steps in order, over one :class:`RunContext`."""

    def __init__(self, cfg: SearchConfig, out: str | Path, **kwargs: Any) -> None:
        self.run_ctx = RunContext.new(cfg, out, **kwargs)

    def prepare(self) -> None:
        """Everything that can fail on a bad config, before anything is written."""
        setup.prepare(self.run_ctx)

    def run(self) -> SearchResult:
        """Validate, then hold RUN_DIR's lock (one live owner) for the whole search."""
        from mergekit_evo.search.fleet.processes import started_by_run
        from mergekit_evo.search.rundir.lock import RunDirLock

        self.prepare()
        if started_by_run():  # a --gpus/--workers child: its parent holds RUN_DIR's lock
            return self._run()
        with RunDirLock(self.run_ctx.rundir.root):
            self.run_ctx.rundir.recover()  # the owner, alone: undo what a killed run left half done
            return self._run()

    def _run(self) -> SearchResult:
        run = self.run_ctx
        setup.create(run)
        if run.owner:
            setup.recover(run)
        with run.worker.presence(heartbeat_interval_s()):
            if run.fleet is None:
                return self.run_stages()
            run.fleet.start(run.rundir, run.storage_url, run.cfg)
            try:
                return self.run_stages(before_finish=run.fleet.wait)
            except BaseException:
                run.fleet.abort()
                raise

    def run_stages(self, before_finish: Any = None) -> SearchResult:
        """The stages, then (``before_finish`` called, e.g. waiting for workers) the outputs."""
        run, cfg = self.run_ctx, self.run_ctx.cfg
        _, dfs_budget = stage_budgets(cfg)
        studies: list[tuple[str, optuna.Study]] = []
        stop_reasons: dict[str, str] = {}
        ps_best = dfs_best = None
        baseline: dict[str, float] = {}

        if cfg.mode in ("ps", "ps_dfs"):
            ps_best = self._ps_stage(studies, stop_reasons, baseline)

        ps_failed = ps_best is None or any(
            why.startswith(FAILURE_STOP) for stage, why in stop_reasons.items() if stage != "dfs"
        )
        if cfg.mode == "dfs" or (cfg.mode == "ps_dfs" and not ps_failed):
            if cfg.mode == "dfs":
                from mergekit_evo.space.dfs import DFSSpace

                space = DFSSpace.from_config(cfg)
                study = setup.open_stage(run, "dfs", space)
                baseline = setup.source_baselines(run, study)
                setup.wait_for_workers(run, study)
            else:
                space = self._ps_dfs_space([st for name, st in studies if name.startswith("ps")])
                study = setup.open_stage(run, "dfs", space)
            best_source = max(baseline.values()) if baseline else None
            ctx = setup.stage_context(
                run,
                study,
                space,
                stop_rule(cfg, space, dfs_budget, best_source, failures_since=run.started),
                prefix="dfs-" if run.two_stage else "",
                on_best=run.outputs.on_best_final("dfs"),
                elapsed_offset_s=sum(float(s.user_attrs.get("wall_s", 0.0)) for _, s in studies),
            )
            res = run_dfs_stage(ctx, cfg.dfs)
            dfs_best = self._ended("dfs", study, res, studies, stop_reasons)
            self._confirm([("dfs", study)], "dfs-" if run.two_stage else "")

        if before_finish is not None:
            before_finish()
        return finish(run, studies, baseline, ps_best, dfs_best, stop_reasons)

    def _ps_stage(
        self,
        studies: list[tuple[str, optuna.Study]],
        stop_reasons: dict[str, str],
        baseline: dict[str, float],
    ) -> float | None:
        """The PS stage (one method, or the race between several); its best fitness.  Source
        baselines are filled into ``baseline``; every PS study is appended to ``studies``."""
        from mergekit_evo.space.ps import PSSpace

        run, cfg = self.run_ctx, self.run_ctx.cfg
        ps_budget, _ = stage_budgets(cfg)
        methods = cfg.ps.methods
        arms = {m: (f"ps:{m}" if len(methods) > 1 else "ps") for m in methods}
        spaces: dict[str, Space] = {m: PSSpace.from_config(cfg.for_method(m)) for m in methods}
        opened = {m: setup.open_stage(run, arms[m], spaces[m]) for m in methods}
        first = opened[methods[0]]
        baseline.update(setup.source_baselines(run, first))
        setup.wait_for_workers(run, first)
        best_source = max(baseline.values()) if baseline else None
        write_best = (
            run.outputs.on_best_ps_stage if run.two_stage else run.outputs.on_best_final("ps")
        )

        def on_best(number: int, recipe: dict[str, Any], ev: Evaluation) -> None:
            if ev.fitness >= (_best_of(opened) or ev.fitness):  # the best of every method's
                write_best(number, recipe, ev)

        def run_arm(method: str, max_trials: int) -> StageResult:
            space = spaces[method]
            prefix = "ps-" if run.two_stage else ""
            if len(methods) > 1:
                prefix += f"{method}-"
            others = sum(float(st.user_attrs.get("wall_s", 0.0)) for m, st in opened.items())
            others -= float(opened[method].user_attrs.get("wall_s", 0.0))
            ctx = setup.stage_context(
                run,
                opened[method],
                space,
                stop_rule(cfg, space, max_trials, best_source, failures_since=run.started),
                prefix=prefix,
                on_best=on_best,
                elapsed_offset_s=others,  # the wall-clock budget is the whole search's
            )
            return run_stage(ctx)

        if len(methods) == 1:
            res = run_arm(methods[0], ps_budget)
            best = self._ended("ps", first, res, studies, stop_reasons)
        else:
            res, best = self._race(methods, ps_budget, opened, run_arm, stop_reasons)
            for m in methods:
                stop_reasons.setdefault(arms[m], f"not run: {ps_budget} PS trials left it none")
                studies.append((arms[m], opened[m]))
                self.run_ctx.worker.report(opened[m], f"stopped: {stop_reasons[arms[m]]}")
        self._confirm([(arms[m], opened[m]) for m in methods], "ps-" if run.two_stage else "")
        return best

    def _race(
        self,
        methods: list[str],
        budget: int,
        opened: dict[str, optuna.Study],
        run_arm: Any,
        stop_reasons: dict[str, str],
    ) -> tuple[StageResult | None, float | None]:
        """Successive halving over the methods (search/stage/method_race.py)."""
        from mergekit_evo.search.stage.loop import best_trial
        from mergekit_evo.search.stage.method_race import next_round, ranked

        run = self.run_ctx
        done: list = []
        res: StageResult | None = None
        while True:
            bests = {m: _best_fitness(best_trial(opened[m])) for m in methods}
            rnd = next_round(methods, budget, done, bests)
            if rnd is None:
                break
            if not done or rnd.methods != done[-1].methods:
                shown = ", ".join(
                    f"{m} {bests[m]:.4f}" if bests[m] is not None else m for m in rnd.methods
                )
                run.log(f"method race: round {rnd.index + 1}: {shown}")
            for m in rnd.methods:
                res = run_arm(m, rnd.max_trials[m])
                stop_reasons[f"ps:{m}"] = res.stop_reason
                if not res.stop_reason.startswith("budget"):  # a target, the clock, failures
                    self._race_over(methods, stop_reasons, res.stop_reason)
                    return res, _best_of(opened)
            done.append(rnd)
        winner = ranked(list(done[-1].methods), methods, bests)[0] if done else methods[0]
        run.log(f"method race: {winner} won")
        for m in methods:
            if m != winner and stop_reasons.get(f"ps:{m}", "").startswith("budget"):
                stop_reasons[f"ps:{m}"] += f"; out of the method race (won by {winner})"
        return res, _best_of(opened)

    @staticmethod
    def _race_over(methods: list[str], stop_reasons: dict[str, str], why: str) -> None:
        for m in methods:
            stop_reasons.setdefault(f"ps:{m}", why)

    def _confirm(self, stage_studies: list[tuple[str, optuna.Study]], label: str) -> None:
        """The winner's curse: the stage's top candidates scored on the confirm slice (the
        ``search`` process; search/stage/confirm.py)."""
        from mergekit_evo.search.stage.confirm import confirm_stage, top_trials

        run = self.run_ctx
        scorer = run.scorer
        if not run.leader or scorer is None or not scorer.n_confirm or run.builder is None:
            return
        from mergekit_evo.search.scoring.evaluation import CandidateEvaluator

        evaluator = CandidateEvaluator(run.builder, scorer, run.log)
        k = run.cfg.confirm.top_k
        # the top k over the whole stage: a method cut from the race keeps its best in the pool
        pool = sorted(
            ((t, name, st) for name, st in stage_studies for t in top_trials(st, k)),
            key=lambda x: -float(x[0].user_attrs["fitness"]),
        )[:k]
        for name, st in stage_studies:
            keep = {t.number for t, n, _ in pool if n == name}
            if keep:
                confirm_stage(
                    st,
                    evaluator.confirm,
                    len(keep),
                    run.rundir.work,
                    run.log,
                    label=label + (name.split(":", 1)[1] + "-" if ":" in name else ""),
                )

    def _ps_dfs_space(self, ps_studies: list[optuna.Study]) -> Space:
        """PS+DFS: the DFS stage's space over the PS stage's best recipes (its champion
        first, picked on fitness and confirm questions together when confirmed)."""
        from mergekit_evo.space.ps_dfs import PSDFSSpace

        run, cfg = self.run_ctx, self.run_ctx.cfg
        assert run.storage is not None
        recipes = dfs_base_recipes(
            run.storage,
            run.study_names()["dfs"],
            ps_studies,
            cfg.ps_dfs.ps_candidates_multiplier or 1,
            leader=run.leader,
        )
        partner = None
        if not cfg.ps_dfs.ps_candidates_multiplier:
            partner = cfg.model_path(cfg.ps_dfs.partner or list(cfg.models)[-1])
        return PSDFSSpace(cfg, recipes, partner)

    def _ended(
        self,
        name: str,
        study: optuna.Study,
        res: StageResult,
        studies: list[tuple[str, optuna.Study]],
        stop_reasons: dict[str, str],
    ) -> float | None:
        """Record a finished stage; its best fitness."""
        studies.append((name, study))
        stop_reasons[name] = res.stop_reason
        self.run_ctx.worker.report(study, f"stopped: {res.stop_reason}")
        return res.best_fitness


def _best_fitness(t: optuna.trial.FrozenTrial | None) -> float | None:
    return None if t is None else float(t.user_attrs["fitness"])


def _best_of(opened: dict[str, optuna.Study]) -> float | None:
    from mergekit_evo.search.stage.loop import best_trial

    values = [v for st in opened.values() if (v := _best_fitness(best_trial(st))) is not None]
    return max(values) if values else None


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
