"""The result files of a run directory: ``best.yml``, ``champion/``, ``pareto.json`` and the
end-of-run ``metrics.json``, ``trials.csv``, ``report.md``.

``best.yml`` and ``champion/`` are rewritten as soon as a trial beats the study's best, so a
run killed at any point still leaves its champion recipe; the rest is written at the end, read
back from the studies (so it covers every worker).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mergekit_evo.search.rundir.files import RunDir
from mergekit_evo.search.scoring.evaluation import Evaluation
from mergekit_evo.search.stage.context import OnBest

if TYPE_CHECKING:
    import optuna

    from mergekit_evo.candidate.base import CandidateBuilder


class Outputs:
    """Writers of a run's champion files."""

    def __init__(self, rundir: RunDir, merge_seed: int, save_champion: bool) -> None:
        self.rundir = rundir
        self.merge_seed = merge_seed
        self.save_champion = save_champion

    @property
    def champion_info(self) -> Path:
        return self.rundir.root / "champion.json"

    def best_header(self, fitness: float, number: int, stage: str) -> str:
        """The comment atop best.yml: where it came from and how to rebuild it."""
        return (
            f"# mergekit-evo champion: {stage} trial {number}, fitness {fitness:.6f}\n"
            f"# reproduce: mergekit-yaml best.yml OUT --random-seed {self.merge_seed}\n"
            "# (local model paths are relative to the folder the search was run from)\n"
        )

    def write_best(self, recipe: dict[str, Any], fitness: float, number: int, stage: str) -> None:
        self.rundir.write_recipe(
            self.rundir.best, recipe, header=self.best_header(fitness, number, stage)
        )

    def on_best_final(self, stage: str) -> OnBest:
        """The final stage's new best: best.yml, and the merged folder if kept."""

        def on_best(number: int, recipe: dict[str, Any], ev: Evaluation) -> None:
            self.write_best(recipe, ev.fitness, number, stage)
            if self.save_champion and ev.model_dir is not None and ev.model_dir.exists():
                self.rundir.replace_dir(ev.model_dir, self.rundir.champion)
                self.rundir.write_json(
                    self.champion_info, {"stage": stage, "trial": number, "fitness": ev.fitness}
                )

        return on_best

    def on_best_ps_stage(self, number: int, recipe: dict[str, Any], ev: Evaluation) -> None:
        """The PS stage's new best in a PS+DFS search: ps_best.yml (DFS builds the champion)."""
        self.rundir.write_recipe(
            self.rundir.root / "ps_best.yml",
            recipe,
            header=self.best_header(ev.fitness, number, "ps"),
        )

    def ensure_champion(
        self, builder: CandidateBuilder, recipe: dict[str, Any], stage: str, number: int
    ) -> Path:
        """``champion/`` holds the in-search candidate; rebuild it only if it is missing/stale."""
        info = self.champion_info
        if self.rundir.champion.exists() and info.exists():
            meta = json.loads(info.read_text())
            if meta.get("stage") == stage and meta.get("trial") == number:
                return self.rundir.champion
        tmp = self.rundir.work / "champion"
        merge = getattr(builder, "merge", None)
        if merge is None:
            raise RuntimeError("this candidate builder cannot write a champion folder")
        merge(recipe, tmp)
        self.rundir.replace_dir(tmp, self.rundir.champion)
        self.rundir.write_json(info, {"stage": stage, "trial": number, "rebuilt": True})
        return self.rundir.champion

    def write_summary(
        self, metrics: dict[str, Any], studies: Sequence[tuple[str, optuna.Study]]
    ) -> None:
        """metrics.json, trials.csv and report.md."""
        from mergekit_evo.report.markdown import markdown_report
        from mergekit_evo.report.trials_csv import trial_rows, trials_csv

        self.rundir.write_json(self.rundir.metrics, metrics)
        self.rundir.write_text(self.rundir.trials_csv, trials_csv(studies))
        self.rundir.write_text(
            self.rundir.root / "report.md", markdown_report(metrics, trial_rows(studies))
        )


def write_pareto(rundir: RunDir, study: optuna.Study) -> None:
    """pareto.json: the non-dominated trials of a multi-objective study."""
    front = [
        {
            "number": t.number,
            "values": list(t.values or []),
            "fitness": t.user_attrs.get("fitness"),
            "yaml": t.user_attrs.get("yaml"),
        }
        for t in study.best_trials
    ]
    rundir.write_json(rundir.pareto, front)


def trial_counts(studies: Sequence[tuple[str, optuna.Study]]) -> dict[str, dict[str, int]]:
    """Trials per stage by state (complete, pruned, fail, running), for metrics.json."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    return {
        s: {st.name.lower(): len(study.get_trials(deepcopy=False, states=(st,))) for st in states}
        for s, study in studies
    }
