"""What the stages of one search process share, made once by :func:`run_search` and read by
the set-up (:mod:`.setup`), each stage's :class:`StageContext` and the finish (:mod:`.finish`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mergekit_evo.config import SearchConfig
from mergekit_evo.search.fleet.workers import Worker
from mergekit_evo.search.run.outputs import Outputs
from mergekit_evo.search.rundir.files import RunDir
from mergekit_evo.search.stage.context import Log

if TYPE_CHECKING:
    import optuna

    from mergekit_evo.candidate.base import CandidateBuilder
    from mergekit_evo.search.fleet.processes import Fleet
    from mergekit_evo.search.scoring.callable_scoring import CallableScorer, FitnessFn
    from mergekit_evo.search.scoring.scorer import Scorer


@dataclass
class RunContext:
    """One search process: its config, run folder, role, and what set-up makes (scorers,
    candidate builder, storage)."""

    cfg: SearchConfig
    rundir: RunDir
    outputs: Outputs
    role: str  # "search" or "worker"
    worker: Worker  # this process's entry in the studies' registries
    log: Log = print
    save_champion: bool = False
    fitness_fn: FitnessFn | None = None  # a Python fitness in place of lm-eval tasks
    fleet: Fleet | None = None  # the other local worker processes this one starts (--gpus)
    builder: CandidateBuilder | None = None  # set by prepare() unless given
    scorer: Scorer | CallableScorer | None = None  # set by prepare()
    report_scorer: Scorer | CallableScorer | None = None  # set by prepare() with a report
    storage_url: str = ""
    storage: optuna.storages.BaseStorage | None = None  # opened by create()
    started: datetime = field(
        default_factory=datetime.now
    )  # failed trials in a row count from here

    @classmethod
    def new(
        cls,
        cfg: SearchConfig,
        out: str | Path,
        *,
        save_champion: bool = False,
        role: str = "search",
        builder: CandidateBuilder | None = None,
        log: Log = print,
        fitness_fn: FitnessFn | None = None,
        fleet: Fleet | None = None,
    ) -> RunContext:
        rundir = RunDir(out)
        run = cls(
            cfg=cfg,
            rundir=rundir,
            outputs=Outputs(rundir, cfg.merge_seed, save_champion),
            role=role,
            worker=Worker.this_process(role, cfg.device),
            log=log,
            save_champion=save_champion,
            fitness_fn=fitness_fn,
            fleet=fleet,
            builder=builder,
        )
        # a rerun without --storage resumes where the first run kept its study
        run.storage_url = cfg.storage or run.remembered("storage") or rundir.default_storage
        return run

    @property
    def leader(self) -> bool:
        """Enqueues start points, scores baselines, picks polish moves, writes the results."""
        return self.role == "search"

    @property
    def owner(self) -> bool:
        """The run directory's own storage: nothing else runs on it before this process starts
        its workers, so trials RUNNING then are dead."""
        embedded = (self.rundir.default_storage, self.rundir.legacy_storage)
        return self.leader and self.storage_url in embedded

    @property
    def two_stage(self) -> bool:
        return self.cfg.mode == "ps_dfs"

    def remembered(self, key: str) -> Any:
        """A field of the first run's ``run.json`` (None for a new run directory)."""
        info = self.rundir.run_info
        if not info.exists():
            return None
        try:
            return json.loads(info.read_text()).get(key)
        except (OSError, ValueError):
            return None

    def study_names(self) -> dict[str, str]:
        """Stage -> the name of its Optuna study; a method choice has one PS study per method
        (stage ``ps:<method>``)."""
        name = self.cfg.study_name
        methods = self.cfg.ps.methods
        if len(methods) > 1:
            ps = {f"ps:{m}": f"{name}-ps-{m}" for m in methods}
        else:
            ps = {"ps": f"{name}-ps"}
        if self.cfg.mode == "ps":
            return ps
        if self.cfg.mode == "dfs":
            return {"dfs": f"{name}-dfs"}
        return {**ps, "dfs": f"{name}-dfs"}
