"""The ask/tell loop of one search stage: propose, write YAML, build, score, tell, stop.

One trial at a time per process (a CPU host merges one candidate at a time anyway); several
processes or hosts may run this loop on one shared study (``mergekit-evo worker``), and Optuna's
CMA-ES sampler coordinates the generations through the storage.
"""

from __future__ import annotations

import math
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mergekit_evo.search.fleet.budget import Slots, StageClock, claim, fitness_of
from mergekit_evo.search.fleet.recovery import heartbeat, recover_interrupted, requeue
from mergekit_evo.search.fleet.workers import TRIAL_ATTR
from mergekit_evo.search.rundir.events import TrialLine
from mergekit_evo.search.scoring.failures import streak_reason
from mergekit_evo.search.scoring.scorer import OnRung
from mergekit_evo.search.stage import starts
from mergekit_evo.search.stage.context import StageContext
from mergekit_evo.search.stage.pruning import IncumbentBoundPruner, Pruned, incumbent

if TYPE_CHECKING:
    import optuna


@dataclass
class StageResult:
    """Outcome of a stage, read back from the study (so it covers every worker)."""

    best_fitness: float | None
    best_number: int | None
    best_recipe: dict[str, Any] | None
    n_complete: int
    n_failed: int
    stop_reason: str


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The completed trial with the highest scalar fitness (ties: the earliest)."""
    from optuna.trial import TrialState

    best: optuna.trial.FrozenTrial | None = None
    best_f = -math.inf
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        f = fitness_of(t)
        if f is not None and (best is None or f > best_f):
            best, best_f = t, f
    return best


def stage_result(study: optuna.Study, reason: str) -> StageResult:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    b = best_trial(study)
    return StageResult(
        best_fitness=fitness_of(b) if b else None,
        best_number=b.number if b else None,
        best_recipe=b.user_attrs.get("recipe") if b else None,
        n_complete=sum(t.state == TrialState.COMPLETE for t in trials),
        n_failed=sum(t.state == TrialState.FAIL for t in trials),
        stop_reason=reason,
    )


def run_stage(ctx: StageContext) -> StageResult:
    """Run trials until ``ctx.stop`` says so; safe to call again on the same study (resume).

    The budget is the study's, not this process's (:mod:`mergekit_evo.search.fleet.budget`):
    while the last slots are held by trials running elsewhere, this process waits for them (one
    may die and be re-asked).
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    study, space, evaluate, rundir, stop = ctx.study, ctx.space, ctx.evaluate, ctx.rundir, ctx.stop
    prefix, log, worker, on_best, poll_s = ctx.prefix, ctx.log, ctx.worker, ctx.on_best, ctx.poll_s
    leader = ctx.leader
    vec = space.vector
    if worker is not None:
        worker.report(study, "ready")
    recovered = recover_interrupted(study, all_running=ctx.owner)
    if recovered:
        log(f"resume: {len(recovered)} interrupted trial(s) failed and re-queued: {recovered}")
    if leader and not study.get_trials(deepcopy=False):
        if ctx.starts:
            starts.enqueue(study, space, ctx.starts, log, ctx.stop.max_trials)
        else:
            study.enqueue_trial(vec.start_params(), user_attrs={starts.START_ATTR: True})
    pruning = isinstance(study.pruner, IncumbentBoundPruner)
    sampler_ready = ctx.after_starts is None
    waited = 0.0
    while not leader and not study.get_trials(deepcopy=False):
        if waited == 0.0:
            log("waiting for the search (mergekit-evo search) to start this stage ...")
        time.sleep(1.0)
        waited += 1.0
    clock = StageClock(study, ctx.elapsed_offset_s)
    reason = ""
    last_report = 0.0
    while True:
        # any process of the study may have died since the last trial: re-ask its trial
        again = recover_interrupted(study, all_running=False)
        if again:
            log(f"re-queued {len(again)} trial(s) of a dead worker: {again}")
        trials = study.get_trials(deepcopy=False)
        slots = Slots.of(trials, stop.max_trials)
        fit = slots.fitness
        reason = (
            streak_reason(trials, stop.max_consecutive_failures, stop.failures_since)
            or stop.reason(slots.done, fit, clock.elapsed_s())
            or ""
        )
        if reason:
            break
        if not slots.can_ask():  # the last slots are held by trials running elsewhere
            if worker is not None and time.monotonic() - last_report > 10 * poll_s:
                worker.report(study, "waiting for the last trials of other workers")
                last_report = time.monotonic()
            time.sleep(poll_s)
            continue
        if not sampler_ready:
            waiting, running = starts.unscored(trials)
            if not waiting and running:  # CMA-ES starts from the best: wait for all of them
                time.sleep(poll_s)
                continue
            if not waiting:
                first = starts.best_start(trials)
                assert ctx.after_starts is not None
                study.sampler = ctx.after_starts(dict(first.params) if first else {})
                sampler_ready = True
        best_before = max(fit) if fit else None
        with warnings.catch_warnings():  # heartbeats are recorded by hand (see fleet/recovery.py)
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = study.ask()
        if not claim(study, trial, stop.max_trials):
            continue  # another process took the last slot between our check and our ask
        workdir = rundir.work / f"{prefix}{trial.number:05d}"
        try:
            x = vec.from_trial(trial)
            recipe = space.recipe(x)
            yml = rundir.trial_yaml(trial.number, prefix)
            rundir.write_recipe(yml, recipe, header=f"# trial {trial.number} ({space.name})\n")
            trial.set_user_attr("stage", space.name)
            trial.set_user_attr("yaml", str(yml.relative_to(rundir.root)))
            trial.set_user_attr("recipe", recipe)
            trial.set_user_attr("coefficients", space.describe(x))
            if worker is not None:
                trial.set_user_attr(TRIAL_ATTR, worker.key)
                worker.report(study, "trial", trial.number)
                last_report = time.monotonic()
            t0 = time.monotonic()
            try:
                with heartbeat(study, trial):
                    if pruning:
                        ev = evaluate(recipe, trial.number, workdir, on_rung=_rung(study, trial))
                    else:
                        ev = evaluate(recipe, trial.number, workdir)
                if not all(math.isfinite(v) for v in [ev.fitness, *ev.values]):
                    raise ValueError(f"non-finite fitness {ev.fitness} (values {ev.values})")
            except Pruned as p:  # multi-fidelity: it cannot plausibly beat the best any more
                secs = time.monotonic() - t0
                trial.set_user_attr("fitness_partial", p.fitness)
                trial.set_user_attr("questions", p.questions)
                text = (
                    f"pruned  {p.fitness:.4f} on {p.questions} questions  best "
                    f"{p.incumbent or 0.0:.4f}    "
                )
                # PRUNED: Optuna keeps its last rung's fitness as its value
                _unscored(study, trial, TrialState.PRUNED, text, secs, best_before, log)
                _cleanup(workdir)
                clock.publish()
                continue
            except KeyboardInterrupt:
                trial.set_user_attr("fail_reason", "interrupted by the user")
                trial.set_user_attr("interrupted", True)
                study.tell(trial, state=TrialState.FAIL)
                requeue(study, study._storage.get_trial(trial._trial_id))  # asked again on resume
                _cleanup(workdir)
                raise
            except Exception as e:  # a bad candidate fails its trial, not the search
                secs = time.monotonic() - t0
                msg = f"{type(e).__name__}: {e}"
                trial.set_user_attr("fail_reason", msg[:2000])
                trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
                _unscored(
                    study, trial, TrialState.FAIL, f"FAILED  {msg[:160]}", secs, best_before, log
                )
                _cleanup(workdir)
                clock.publish()
                continue
            secs = time.monotonic() - t0
            trial.set_user_attr("fitness", ev.fitness)
            trial.set_user_attr("per_task", ev.per_task)
            trial.set_user_attr("seconds", round(secs, 3))
            if ev.questions is not None:
                trial.set_user_attr("questions", ev.questions)
            study.tell(trial, ev.values if len(ev.values) > 1 else ev.values[0])
            improved = best_before is None or ev.fitness > best_before
            best = ev.fitness if improved else best_before
            log(
                TrialLine(
                    f"trial {trial.number:5d}  fitness {ev.fitness:.4f}  best {best:.4f}"
                    f"{'  *' if improved else '   '}  ({secs:.1f} s)",
                    number=trial.number, fitness=ev.fitness, best=best, improved=improved,
                    seconds=secs,
                )
            )  # fmt: skip
            if improved and on_best is not None:
                b = best_trial(study)
                if b is not None and b.number == trial.number:
                    on_best(trial.number, recipe, ev)
            _cleanup(workdir)
            clock.publish()
        except UpdateFinishedTrialError:  # no heartbeat for the grace period: taken for dead
            log(f"trial {trial.number:5d}  dropped: taken for dead elsewhere, asked again")
            _cleanup(workdir)
    log(f"stop ({prefix.rstrip('-') or space.name}): {reason}")
    return stage_result(study, reason)


def _unscored(
    study: optuna.Study,
    trial: optuna.trial.Trial,
    state: optuna.trial.TrialState,
    text: str,
    secs: float,
    best: float | None,
    log: Callable[[str], None],
) -> None:
    """End a trial that has no fitness (failed, or pruned part way) and log its line."""
    trial.set_user_attr("seconds", round(secs, 3))
    study.tell(trial, state=state)
    log(
        TrialLine(
            f"trial {trial.number:5d}  {text}  ({secs:.1f} s)",
            number=trial.number, fitness=None, best=best, improved=False, seconds=secs,
        )
    )  # fmt: skip


def _rung(study: optuna.Study, trial: optuna.trial.Trial) -> OnRung:
    """Report a rung's fitness to Optuna (step = questions scored) and stop the candidate when
    the study's pruner says it cannot plausibly beat the best complete trial."""

    def on_rung(questions: int, fitness: float) -> None:
        trial.report(fitness, questions)
        if trial.should_prune():
            raise Pruned(fitness, questions, incumbent(study))

    return on_rung


def _cleanup(workdir: Path) -> None:
    import shutil

    shutil.rmtree(workdir, ignore_errors=True)
