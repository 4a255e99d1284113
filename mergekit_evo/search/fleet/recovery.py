"""Nothing lost when a process dies: heartbeats while a trial runs, and re-asking dead trials.

A trial whose process died (SIGKILL, power loss) stays RUNNING in the storage.  Whoever notices
(any process of the study, once the trial's heartbeat is older than the grace period; or the
``search`` process at start, when it owns the run directory's storage alone) fails it with a
reason and enqueues its parameters again, so the same point is asked once more and nothing is
evaluated twice.  A failed-as-interrupted trial does not count against the budget.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from mergekit_evo.search.fleet.periodic import every
from mergekit_evo.search.fleet.storage import BEAT_ATTR, grace_period_s

if TYPE_CHECKING:
    import optuna

INTERRUPTED = "interrupted: the process running this trial died before it finished"
#: user attrs of an enqueued trial that say where it came from; a retry keeps them
ORIGIN_ATTRS = ("start_point", "polish", "polish_from")


def recover_interrupted(study: optuna.Study, all_running: bool) -> list[int]:
    """Fail trials whose process died and enqueue their parameters again.

    ``all_running``: the caller owns the study alone (nothing else runs on it), so every
    RUNNING trial is dead; otherwise only trials whose heartbeat went stale are.
    """
    from optuna.trial import TrialState

    storage = study._storage
    if all_running:
        stale = [
            t._trial_id for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        ]
    elif (interval := getattr(storage, "get_heartbeat_interval", lambda: None)()) is not None:
        stale = list(storage._get_stale_trial_ids(study._study_id))  # type: ignore[attr-defined]
        stale += never_beat(study, grace_period_s(float(interval)))
        stale = list(dict.fromkeys(stale))
    else:
        return []
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
            requeue(study, t)
        recovered.append(t.number)
    return recovered


def never_beat(study: optuna.Study, grace_s: float) -> list[int]:
    """RUNNING trials whose process died before their first heartbeat (Optuna's check skips
    trials with no beat): started longer than the grace period ago and never beat since."""
    from optuna.trial import TrialState

    now = datetime.now()
    return [
        t._trial_id
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if BEAT_ATTR not in t.system_attrs
        and t.datetime_start is not None
        and (now - t.datetime_start).total_seconds() > grace_s
    ]


def requeue(study: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
    """Enqueue ``t``'s parameters again (as a retry of ``t``)."""
    attrs = {k: t.user_attrs[k] for k in ORIGIN_ATTRS if k in t.user_attrs}
    study.enqueue_trial(dict(t.params), user_attrs={**attrs, "retry_of": t.number})


@contextmanager
def heartbeat(study: optuna.Study, trial: optuna.trial.Trial) -> Iterator[None]:
    """Beat for ``trial`` while it runs (Optuna's own beat runs only inside ``optimize``)."""
    storage = study._storage
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if interval is None:
        yield
        return
    marked = False

    def beat() -> None:
        nonlocal marked
        storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
        if not marked and BEAT_ATTR not in storage.get_trial(trial._trial_id).system_attrs:
            # RDB keeps beats in its own table: mark the trial as beating (never_beat)
            storage.set_trial_system_attr(trial._trial_id, BEAT_ATTR, time.time())
        marked = True

    with every(interval, beat, at_start=True):
        yield
