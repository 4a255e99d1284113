"""A whole search: baselines, the PS and/or DFS stages, and the files in the run directory.

``run_search`` is what ``mergekit-evo search`` and ``mergekit-evo worker`` call.  Order matters
for "nothing half-written": the config is validated and the fitness tasks are built before
the run directory is created; only then is anything written or any model loaded.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mergekit_evo.config import ConfigError, SearchConfig
from mergekit_evo.search.loop import Evaluation, Log, best_trial, run_stage
from mergekit_evo.search.polish import polish_budget, run_polish, serve_polish
from mergekit_evo.search.rundir import RunDir
from mergekit_evo.search.stopping import StopRule
from mergekit_evo.search.study import make_sampler, make_storage, open_study, population_size

if TYPE_CHECKING:
    import optuna

    from mergekit_evo.candidate.base import CandidateBuilder
    from mergekit_evo.search.scoring import Scorer
    from mergekit_evo.space.base import Space

#: config fields that may change between runs of one search (everything else must match)
_MUTABLE = ("budget", "storage", "device", "report", "baselines")


@dataclass
class SearchResult:
    """What a finished (or stopped) search returns."""

    rundir: Path
    best_recipe: dict[str, Any] | None
    metrics: dict[str, Any]
    champion_path: Path | None


def apply_overrides(
    cfg: SearchConfig,
    *,
    max_trials: int | None = None,
    device: str | None = None,
    storage: str | None = None,
    seed: int | None = None,
) -> SearchConfig:
    """CLI flags win over the config file."""
    upd: dict[str, Any] = {}
    if max_trials is not None:
        upd["budget"] = cfg.budget.model_copy(update={"max_trials": max_trials})
    if device is not None:
        upd["device"] = device
    if storage is not None:
        upd["storage"] = storage
    if seed is not None:
        upd["optimizer"] = cfg.optimizer.model_copy(update={"seed": seed})
    return cfg.model_copy(update=upd) if upd else cfg


#: config sections a mode never reads: a change there (e.g. a new DFS default) is no new search
_UNUSED_BY_MODE = {"ps": ("dfs", "ps_dfs"), "dfs": ("ps", "ps_dfs"), "ps_dfs": ()}


def _identity(cfg: SearchConfig) -> dict[str, Any]:
    d = cfg.model_dump(mode="json")
    for k in (*_MUTABLE, *_UNUSED_BY_MODE[cfg.mode]):
        d.pop(k, None)
    return d


def _check_same_search(rundir: RunDir, cfg: SearchConfig) -> None:
    """Refuse to resume a run directory with a different search in it."""
    if not rundir.config.exists():
        return
    old = SearchConfig.model_validate(yaml.safe_load(rundir.config.read_text()))
    a, b = _identity(old), _identity(cfg)
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        raise ConfigError(
            [
                (
                    k,
                    f"differs from the search already in {rundir.root} (config.yml); "
                    "use a new --out or the same config",
                )
                for k in diff
            ]
        )


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
    ) -> None:
        self.cfg = cfg
        self.rundir = RunDir(out)
        self.save_champion = save_champion
        self.role = role
        self.log = log
        self.builder = builder
        self.scorer: Scorer | None = None
        remembered = self._remembered_storage()
        self.storage_url = cfg.storage or remembered or self.rundir.storage_url
        # alone on the study: the default SQLite file in RUN_DIR, so RUNNING trials are dead
        self.owner = role == "search" and self.storage_url == self.rundir.storage_url
        self.two_stage = cfg.mode == "ps_dfs"

    def _remembered_storage(self) -> str | None:
        """A rerun without ``--storage`` resumes where the first run kept its study."""
        info = self.rundir.root / "run.json"
        if not info.exists():
            return None
        try:
            return json.loads(info.read_text()).get("storage")
        except (OSError, ValueError):
            return None

    # -- setup ------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Everything that can fail on a bad config, before anything is written."""
        from mergekit_evo.candidate.disk import DiskCandidateBuilder
        from mergekit_evo.search.scoring import Scorer

        _check_same_search(self.rundir, self.cfg)
        self.check_start_recipes()
        self.scorer = Scorer(self.cfg.fitness, self.cfg.device)
        if self.cfg.report is not None:  # fail now, not after the search, on a bad report task
            self.report_scorer = Scorer(self.cfg.report, self.cfg.device, report=True)
        if self.builder is None:
            self.builder = DiskCandidateBuilder(
                device=self.cfg.device, dtype=self.cfg.dtype, random_seed=self.cfg.merge_seed
            )

    def check_start_recipes(self) -> None:
        """MergeKit (and the dfs compiler) accept the start point's recipe: catches mismatched
        architectures or bad fixed parameters before any trial, reading only config.json."""
        from mergekit_evo.methods import RecipeError, load_recipe
        from mergekit_evo.methods.dfs import compile_dfs

        cfg = self.cfg
        try:
            if cfg.mode in ("ps", "ps_dfs"):
                from mergekit_evo.space.ps import PSSpace

                ps = PSSpace.from_config(cfg)
                load_recipe(ps.recipe(ps.vector.x0()))
            if cfg.mode == "dfs":
                from mergekit_evo.space.dfs import DFSSpace

                dfs = DFSSpace.from_config(cfg)
                compile_dfs(load_recipe(dfs.recipe(dfs.vector.x0())))
            if cfg.mode == "ps_dfs" and not cfg.ps_dfs.ps_candidates_multiplier:
                from mergekit_evo.space.dfs import DFSSpace

                ref = cfg.base_model or next(iter(cfg.models.values()))
                partner = cfg.model_path(cfg.ps_dfs.partner or list(cfg.models)[-1])
                dfs = DFSSpace.from_config(cfg, model_paths=[ref, partner])
                compile_dfs(load_recipe(dfs.recipe(dfs.vector.x0())))
        except RecipeError as e:
            field = {"ps": "ps", "dfs": "dfs.models", "ps_dfs": "ps_dfs.partner"}[cfg.mode]
            raise ConfigError([(field, f"MergeKit rejects the start recipe: {e}")]) from None
        except ValueError as e:  # MergeKit's own pydantic validation of the recipe
            if isinstance(e, ConfigError):
                raise
            raise ConfigError([("ps", f"MergeKit rejects the start recipe: {e}")]) from None

    def create(self) -> None:
        self.rundir.create()
        if not self.rundir.config.exists():
            self.rundir.write_yaml(
                self.rundir.config, self.cfg.model_dump(mode="json", exclude_none=True)
            )
        self.rundir.write_json(
            self.rundir.root / "run.json",
            {
                "storage": self.storage_url,
                "studies": self.study_names(),
                "mode": self.cfg.mode,
                "merge_seed": self.cfg.merge_seed,
            },
        )
        self.storage = make_storage(self.storage_url)

    def study_names(self) -> dict[str, str]:
        name = self.cfg.study_name
        if self.cfg.mode == "ps":
            return {"ps": f"{name}-ps"}
        if self.cfg.mode == "dfs":
            return {"dfs": f"{name}-dfs"}
        return {"ps": f"{name}-ps", "dfs": f"{name}-dfs"}

    def open(self, stage: str, space: Space) -> optuna.Study:
        n_obj = self.scorer.n_objectives if self.scorer else 1
        sampler = make_sampler(self.cfg.optimizer, len(space.vector), n_obj)
        return open_study(self.storage, self.study_names()[stage], sampler, n_obj)

    # -- scoring ----------------------------------------------------------------------------

    def evaluate(self, recipe: dict[str, Any], number: int, workdir: Path) -> Evaluation:
        assert self.builder is not None and self.scorer is not None
        cand = self.builder.build(recipe, workdir)
        try:
            fitness, values, per_task = self.scorer.score(cand.model, cand.tokenizer)
        finally:
            self.builder.release(cand)
        return Evaluation(fitness=fitness, values=values, per_task=per_task, model_dir=cand.path)

    def baselines(self, meta: optuna.Study) -> dict[str, float]:
        """Fitness of each source model (kept in the study, so resume does not rescore)."""
        done: dict[str, float] = dict(meta.user_attrs.get("baseline_fitness", {}))
        if not self.cfg.baselines or self.role != "search":
            return done
        assert self.builder is not None and self.scorer is not None
        for name, path in self.cfg.models.items():
            if name in done:
                continue
            t0 = time.monotonic()
            cand = self.builder.load(path)
            try:
                fitness, _, _ = self.scorer.score(cand.model, cand.tokenizer)
            finally:
                self.builder.release(cand)
            done[name] = fitness
            meta.set_user_attr("baseline_fitness", done)
            self.log(f"baseline {name}: {fitness:.4f}  ({time.monotonic() - t0:.1f} s)")
        return done

    # -- outputs ----------------------------------------------------------------------------

    def best_header(self, fitness: float, number: int, stage: str) -> str:
        return (
            f"# mergekit-evo champion: {stage} trial {number}, fitness {fitness:.6f}\n"
            f"# reproduce: mergekit-yaml best.yml OUT --random-seed {self.cfg.merge_seed}\n"
        )

    def on_best_final(self, stage: str) -> Any:
        def on_best(number: int, recipe: dict[str, Any], ev: Evaluation) -> None:
            self.rundir.write_yaml(
                self.rundir.best, recipe, header=self.best_header(ev.fitness, number, stage)
            )
            if self.save_champion and ev.model_dir is not None and ev.model_dir.exists():
                self.rundir.replace_dir(ev.model_dir, self.rundir.champion)
                self.rundir.write_json(
                    self.rundir.root / "champion.json",
                    {"stage": stage, "trial": number, "fitness": ev.fitness},
                )

        return on_best

    def on_best_ps_stage(self, number: int, recipe: dict[str, Any], ev: Evaluation) -> None:
        self.rundir.write_yaml(
            self.rundir.root / "ps_best.yml",
            recipe,
            header=self.best_header(ev.fitness, number, "ps"),
        )

    # -- stages -----------------------------------------------------------------------------

    def stop_rule(self, space: Space, max_trials: int, best_source: float | None) -> StopRule:
        pop = population_size(self.cfg.optimizer, len(space.vector))
        return StopRule.from_budget(self.cfg.budget, pop, max_trials, best_source)

    def budgets(self) -> tuple[int, int]:
        total = self.cfg.budget.max_trials
        if not self.two_stage:
            return total, total
        ps = self.cfg.ps_dfs.ps_trials
        if ps is None or ps >= total:  # default, or a --max-trials below ps_trials: halve
            ps = max(1, total // 2)
        return ps, max(1, total - ps)

    def ps_candidates(self, ps_study: optuna.Study) -> list[dict[str, Any]]:
        """The PS recipes the DFS stage is built on: the champion, or the top-k."""
        from optuna.trial import TrialState

        k = self.cfg.ps_dfs.ps_candidates_multiplier or 1
        done = [
            t
            for t in ps_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("fitness") is not None and t.user_attrs.get("recipe")
        ]
        done.sort(key=lambda t: (-float(t.user_attrs["fitness"]), t.number))
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for t in done:
            key = json.dumps(t.user_attrs["recipe"], sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            out.append(t.user_attrs["recipe"])
            if len(out) == k:
                break
        if not out:
            raise RuntimeError("the PS stage has no completed trial: nothing to build DFS on")
        return out

    def run(self) -> SearchResult:
        self.prepare()
        self.create()
        cfg = self.cfg
        ps_budget, dfs_budget = self.budgets()
        studies: list[tuple[str, optuna.Study]] = []
        stop_reasons: dict[str, str] = {}
        ps_best = dfs_best = None
        final_study: optuna.Study | None = None
        baseline: dict[str, float] = {}
        prefix_ps = "ps-" if self.two_stage else ""
        prefix_dfs = "dfs-" if self.two_stage else ""

        if cfg.mode in ("ps", "ps_dfs"):
            from mergekit_evo.space.ps import PSSpace

            space: Space = PSSpace.from_config(cfg)
            study = self.open("ps", space)
            baseline = self.baselines(study)
            best_source = max(baseline.values()) if baseline else None
            on_best = self.on_best_ps_stage if self.two_stage else self.on_best_final("ps")
            res = run_stage(
                study,
                space,
                self.evaluate,
                self.rundir,
                self.stop_rule(space, ps_budget, best_source),
                prefix=prefix_ps,
                owner=self.owner,
                leader=self.role == "search",
                on_best=on_best,
                log=self.log,
            )
            studies.append(("ps", study))
            stop_reasons["ps"] = res.stop_reason
            ps_best = res.best_fitness
            final_study = study

        if cfg.mode in ("dfs", "ps_dfs"):
            if cfg.mode == "dfs":
                from mergekit_evo.space.dfs import DFSSpace

                space = DFSSpace.from_config(cfg)
                study = self.open("dfs", space)
                baseline = self.baselines(study)
            else:
                from mergekit_evo.space.ps_dfs import PSDFSSpace

                ps_study = studies[0][1]
                probe = open_study(self.storage, self.study_names()["dfs"], None)
                # the PS recipes DFS builds on are fixed once, in the study, so a resumed run
                # or another worker uses the same ones
                recipes = probe.user_attrs.get("ps_recipes")
                while not recipes and self.role != "search":  # the search picks them
                    time.sleep(2.0)
                    again = open_study(self.storage, probe.study_name, None)
                    recipes = again.user_attrs.get("ps_recipes")
                if not recipes:
                    recipes = self.ps_candidates(ps_study)
                    probe.set_user_attr("ps_recipes", recipes)
                partner = None
                if not cfg.ps_dfs.ps_candidates_multiplier:
                    partner = cfg.model_path(cfg.ps_dfs.partner or list(cfg.models)[-1])
                space = PSDFSSpace(cfg, recipes, partner)
                study = self.open("dfs", space)
            best_source = max(baseline.values()) if baseline else None
            n_polish = polish_budget(cfg.dfs.polish_share, dfs_budget)
            stage_kwargs: dict[str, Any] = dict(
                prefix=prefix_dfs,
                owner=self.owner,
                leader=self.role == "search",
                on_best=self.on_best_final("dfs"),
                log=self.log,
                elapsed_offset_s=sum(float(s.user_attrs.get("wall_s", 0.0)) for _, s in studies),
            )
            cma_rule = self.stop_rule(space, dfs_budget - n_polish, best_source)
            if n_polish:
                note = (
                    f", the CMA-ES part of the stage's {dfs_budget} (dfs.polish_share "
                    f"{cfg.dfs.polish_share:g}); the polish gets the rest"
                )
                cma_rule = replace(cma_rule, budget_note=note)
            res = run_stage(study, space, self.evaluate, self.rundir, cma_rule, **stage_kwargs)
            if n_polish and res.stop_reason.startswith("budget"):
                whole = self.stop_rule(space, dfs_budget, best_source)
                if self.role == "search":  # chooses the moves
                    res = run_polish(
                        study, space, self.evaluate, self.rundir, whole,
                        step=cfg.dfs.polish_step, min_step=cfg.dfs.polish_min_step,
                        **stage_kwargs,
                    )  # fmt: skip
                else:  # scores queued moves alongside it
                    res = serve_polish(
                        study, space, self.evaluate, self.rundir, whole, **stage_kwargs
                    )
            studies.append(("dfs", study))
            stop_reasons["dfs"] = res.stop_reason
            dfs_best = res.best_fitness
            final_study = study

        assert final_study is not None
        return self.finish(studies, final_study, baseline, ps_best, dfs_best, stop_reasons)

    def finish(
        self,
        studies: list[tuple[str, optuna.Study]],
        final_study: optuna.Study,
        baseline: dict[str, float],
        ps_best: float | None,
        dfs_best: float | None,
        stop_reasons: dict[str, str],
    ) -> SearchResult:
        from optuna.trial import TrialState

        from mergekit_evo.report.markdown import markdown_report
        from mergekit_evo.report.metrics import build_metrics
        from mergekit_evo.report.trials_csv import trial_rows, trials_csv

        # the last stage's best; a stage that asked nothing (e.g. the wall clock ran out during
        # PS in PS+DFS) hands the title to the previous stage's best
        stage, b = studies[-1][0], best_trial(final_study)
        for name, study in reversed(studies[:-1]):
            if b is not None:
                break
            stage, b = name, best_trial(study)
        recipe = b.user_attrs.get("recipe") if b else None
        champion = float(b.user_attrs["fitness"]) if b else None
        if b is not None and recipe is not None:
            self.rundir.write_yaml(
                self.rundir.best, recipe, header=self.best_header(champion or 0.0, b.number, stage)
            )
        champ_path = None
        if self.save_champion and recipe is not None:
            champ_path = self.ensure_champion(recipe, stage, b.number if b else -1)
        if self.scorer is not None and self.scorer.n_objectives > 1:
            self.write_pareto(final_study)
        n_trials = {
            s: {
                st.name.lower(): len(study.get_trials(deepcopy=False, states=(st,)))
                for st in (TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING)
            }
            for s, study in studies
        }
        report = self.report(recipe) if self.cfg.report is not None and recipe else None
        metrics = build_metrics(
            mode=self.cfg.mode,
            baseline=baseline,
            ps_best=ps_best,
            dfs_best=dfs_best,
            champion=champion,
            champion_trial=b.number if b else None,
            n_trials=n_trials,
            stop_reasons=stop_reasons,
            report=report,
        )
        self.rundir.write_json(self.rundir.metrics, metrics)
        self.rundir.write_text(self.rundir.trials_csv, trials_csv(studies))
        self.rundir.write_text(
            self.rundir.root / "report.md", markdown_report(metrics, trial_rows(studies))
        )
        return SearchResult(self.rundir.root, recipe, metrics, champ_path)

    def ensure_champion(self, recipe: dict[str, Any], stage: str, number: int) -> Path:
        """``champion/`` holds the in-search candidate; rebuild it only if it is missing/stale."""
        info = self.rundir.root / "champion.json"
        if self.rundir.champion.exists() and info.exists():
            meta = json.loads(info.read_text())
            if meta.get("stage") == stage and meta.get("trial") == number:
                return self.rundir.champion
        assert self.builder is not None
        tmp = self.rundir.work / "champion"
        merge = getattr(self.builder, "merge", None)
        if merge is None:
            raise RuntimeError("this candidate builder cannot write a champion folder")
        merge(recipe, tmp)
        self.rundir.replace_dir(tmp, self.rundir.champion)
        self.rundir.write_json(info, {"stage": stage, "trial": number, "rebuilt": True})
        return self.rundir.champion

    def write_pareto(self, study: optuna.Study) -> None:
        front = [
            {
                "number": t.number,
                "values": list(t.values or []),
                "fitness": t.user_attrs.get("fitness"),
                "yaml": t.user_attrs.get("yaml"),
            }
            for t in study.best_trials
        ]
        self.rundir.write_json(self.rundir.pareto, front)

    def report(self, recipe: dict[str, Any]) -> dict[str, Any]:
        """Report-split scores of each source model and of the champion."""
        from mergekit_evo.search.scoring import Scorer

        assert self.cfg.report is not None and self.builder is not None
        scorer = getattr(self, "report_scorer", None) or Scorer(
            self.cfg.report, self.cfg.device, report=True
        )
        out: dict[str, Any] = {"sources": {}}
        for name, path in self.cfg.models.items():
            cand = self.builder.load(path)
            try:
                score, _, per_task = scorer.score(cand.model, cand.tokenizer)
            finally:
                self.builder.release(cand)
            out["sources"][name] = {"score": score, "per_task": per_task}
        if self.rundir.champion.exists():
            cand = self.builder.load(str(self.rundir.champion))
        else:
            cand = self.builder.build(recipe, self.rundir.work / "report")
        try:
            score, _, per_task = scorer.score(cand.model, cand.tokenizer)
        finally:
            self.builder.release(cand)
            import shutil

            shutil.rmtree(self.rundir.work / "report", ignore_errors=True)
        out["champion"] = {"score": score, "per_task": per_task}
        best_src = max((v["score"] for v in out["sources"].values()), default=None)
        from mergekit_evo.report.metrics import improvement

        out["improvement"] = improvement(score, best_src)
        return out


def run_search(
    cfg: SearchConfig,
    out: str | Path,
    *,
    save_champion: bool = False,
    role: str = "search",
    builder: CandidateBuilder | None = None,
    log: Log = print,
) -> SearchResult:
    """Run (or resume) a search; ``role='worker'`` joins a shared study without baselines."""
    return Search(cfg, out, save_champion=save_champion, role=role, builder=builder, log=log).run()
