"""What one stage of a search needs, made once by the runner and handed down unchanged.

The stage's loop, the DFS stage, the polish and each polish batch all read one
:class:`StageContext` instead of a dozen arguments each; a part that needs another rule or log
for a while (the CMA-ES share of a DFS stage, a polish batch) derives a copy with
:func:`dataclasses.replace`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mergekit_evo.search.fleet.workers import Worker
from mergekit_evo.search.rundir.files import RunDir
from mergekit_evo.search.scoring.evaluation import Evaluate, Evaluation
from mergekit_evo.search.stage.starts import AfterStarts
from mergekit_evo.search.stage.stopping import StopRule

if TYPE_CHECKING:
    import optuna

    from mergekit_evo.space.base import Space
    from mergekit_evo.space.starts import StartPoint

OnBest = Callable[[int, dict[str, Any], Evaluation], None]
Log = Callable[[str], None]


@dataclass(frozen=True)
class StageContext:
    """One stage of one search process: its study and space, how candidates are scored, where
    files go, when it stops, and this process's part in it."""

    study: optuna.Study
    space: Space
    evaluate: Evaluate
    rundir: RunDir
    stop: StopRule  # the whole stage's rule (its budget, patience, targets, wall clock)
    prefix: str = ""  # trial files and work folders of a two-stage search: "ps-", "dfs-"
    # this process owns the study alone, so trials RUNNING at start are dead
    owner: bool = True
    # this process (``search``) enqueues the start point and chooses polish moves; a ``worker``
    # waits for them, so two processes starting together cannot both enqueue one
    leader: bool = True
    on_best: OnBest | None = None  # called when a trial becomes the study's best
    log: Log = print
    elapsed_offset_s: float = 0.0  # wall-clock seconds earlier stages used (budget: the search's)
    worker: Worker | None = None  # this process's entry in the study's registry (status)
    poll_s: float = 1.0  # how often to look again while other processes hold the last trials
    # the standard start points the leader enqueues in a new study (None: the space's x0 only)
    starts: list[StartPoint] | None = None
    # the sampler once every start point is scored, started from the best (None: keep the
    # study's sampler from the first trial on)
    after_starts: AfterStarts | None = None
