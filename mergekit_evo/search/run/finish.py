"""The end of a search: the champion (best.yml, champion/), its report-split scores and the
summary files; a search with nothing completed, or stopped by failures, raises
:class:`SearchFailed` after writing them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mergekit_evo.search.run.context import RunContext
from mergekit_evo.search.run.outputs import trial_counts, write_pareto
from mergekit_evo.search.scoring.evaluation import Evaluation
from mergekit_evo.search.scoring.failures import FAILURE_STOP, SearchFailed, failure_message

if TYPE_CHECKING:
    import optuna


@dataclass
class SearchResult:
    """What a finished (or stopped) search returns."""

    rundir: Path
    best_recipe: dict[str, Any] | None
    metrics: dict[str, Any]
    champion_path: Path | None


def finish(
    run: RunContext,
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
    from mergekit_evo.search.stage.confirm import champion as pick_champion

    cfg, outputs = run.cfg, run.outputs
    final_study = studies[-1][1]
    # the best over fitness and confirm questions of every stage (PS+DFS: never below its PS
    # champion); unconfirmed: the last stage's best (an empty stage hands the title back)
    picked = pick_champion(studies)
    stage, b, champion_pooled = picked if picked else (studies[-1][0], None, None)
    recipe = b.user_attrs.get("recipe") if b else None
    champion = float(b.user_attrs["fitness"]) if b else None
    summary = dict(
        mode=cfg.mode,
        baseline=baseline,
        ps_best=ps_best,
        dfs_best=dfs_best,
        champion=champion,
        champion_trial=b.number if b else None,
        stop_reasons=stop_reasons,
    )
    if not run.leader:  # the search process writes the run's results
        metrics = build_metrics(**summary, n_trials=trial_counts(studies))
        return SearchResult(run.rundir.root, recipe, metrics, None)
    ps_studies = [(n, st) for n, st in studies if n != "dfs"]
    if run.two_stage and (ps_pick := pick_champion(ps_studies)) is not None:
        # another process may have written ps_best.yml last with an older best
        ps = ps_pick[1]
        outputs.on_best_ps_stage(ps.number, ps.user_attrs["recipe"], _as_eval(ps))
    if b is not None and recipe is not None:
        outputs.write_best(recipe, champion or 0.0, b.number, stage)
    champ_path = None
    if run.save_champion and recipe is not None:
        assert run.builder is not None
        champ_path = outputs.ensure_champion(run.builder, recipe, stage, b.number if b else -1)
    if run.scorer is not None and run.scorer.n_objectives > 1:
        write_pareto(run.rundir, final_study)
    rebuilt = rebuilt_fitness(run, recipe) if recipe is not None else None
    report = report_scores_of(run, recipe) if cfg.report is not None and recipe else None
    rows = trial_rows(studies)
    metrics = build_metrics(
        **summary, n_trials=trial_counts(studies), report=report, start=start_fitness(rows)
    )
    if rebuilt is not None:
        metrics["champion_rebuilt_fitness"] = rebuilt
    metrics["champion_stage"] = stage if b is not None else None
    metrics["champion_confirm"] = _confirm_summary(studies, stage, b, champion_pooled)
    metrics["questions_scored"] = questions_scored(studies)
    outputs.write_summary(metrics, studies)
    cfg_doc = cfg.model_dump(mode="json", exclude_none=True)
    write_run_report(run.rundir.root, metrics, rows, cfg_doc, recipe, log=run.log)
    streak = any(r.startswith(FAILURE_STOP) for r in stop_reasons.values())
    if b is None or streak:  # never "success" on nothing, nor after a run of failures
        completed = sum(n["complete"] for n in trial_counts(studies).values())
        raise SearchFailed(
            failure_message(studies, stop_reasons, completed, str(run.rundir.trials_csv))
        )
    return SearchResult(run.rundir.root, recipe, metrics, champ_path)


def rebuilt_fitness(run: RunContext, recipe: dict[str, Any]) -> float | None:
    """The champion as ``best.yml`` rebuilds it, scored again when the search's model was
    not that one (in-memory DARE masks); None when it was."""
    from mergekit_evo.search.run.report_scores import rebuilt_fitness as score_rebuilt

    exact_for = getattr(run.builder, "exact_for", None)
    if exact_for is None or exact_for(recipe) or run.scorer is None:
        return None
    assert run.builder is not None
    score = score_rebuilt(run.scorer, run.builder, recipe, run.rundir.work)
    run.log(
        f"champion rebuilt by mergekit-yaml best.yml --random-seed {run.cfg.merge_seed}: "
        f"fitness {score:.4f} (in-memory DARE masks differ from MergeKit's CPU draws)"
    )
    return score


def report_scores_of(run: RunContext, recipe: dict[str, Any]) -> dict[str, Any]:
    """Report-split scores of each source model and of the champion."""
    from mergekit_evo.search.run.report_scores import report_scores
    from mergekit_evo.search.scoring.callable_scoring import make_scorer

    cfg = run.cfg
    assert cfg.report is not None and run.builder is not None
    scorer = run.report_scorer or make_scorer(cfg.report, cfg.device, report=True)
    return report_scores(
        scorer, run.builder, cfg.models, recipe, run.rundir.champion, run.rundir.work / "report"
    )


def questions_scored(studies: list[tuple[str, optuna.Study]]) -> dict[str, int]:
    """Per stage, the questions its candidates were scored on (pruned ones partially) plus the
    confirm slice's: what the search cost in scoring."""
    from mergekit_evo.search.stage.confirm import confirmed

    out: dict[str, int] = {}
    for name, study in studies:
        n = sum(int(t.user_attrs.get("questions") or 0) for t in study.get_trials(deepcopy=False))
        n += sum(int(v["questions"]) for v in confirmed(study).values())
        out[name] = n
    return out


def _confirm_summary(
    studies: list[tuple[str, optuna.Study]],
    stage: str,
    b: optuna.trial.FrozenTrial | None,
    pooled: float | None,
) -> dict[str, Any] | None:
    """The confirm step in metrics.json: every stage's confirmed trials and the champion's."""
    from mergekit_evo.search.stage.confirm import confirmed

    per_stage = {
        name: {str(k): v for k, v in scores.items()}
        for name, study in studies
        if (scores := confirmed(study))
    }
    if not per_stage:
        return None
    mine = per_stage.get(stage, {}).get(str(b.number)) if b is not None else None
    return {
        "champion": None if mine is None else {**mine, "pooled": pooled},
        "stages": per_stage,
    }


def _as_eval(t: optuna.trial.FrozenTrial) -> Evaluation:
    return Evaluation(fitness=float(t.user_attrs["fitness"]), values=list(t.values or []))
