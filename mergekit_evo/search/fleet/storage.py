"""Where a study lives: an Optuna storage from a string, with heartbeats so dead trials show.

A storage string is either an SQLAlchemy URL (``postgresql://...`` for many hosts, or the
``sqlite:///RUN_DIR/study.db`` of run directories made before the journal default) or the path
of an Optuna journal file (the default, ``RUN_DIR/study.journal``): every process of one host
appends to it under :class:`optuna.storages.journal.JournalFileOpenLock`, with no server.

Heartbeats: ``RDBStorage`` records them natively.  Optuna 5.0's ``JournalStorage`` has no
heartbeat, so :class:`HeartbeatJournalStorage` adds Optuna's own ``BaseHeartbeat`` interface to
it, keeping the beat in a trial system attribute; ``optuna.storages.fail_stale_trials`` and our
recovery then treat both storages alike.  A trial whose process stops beating for the grace
period (4 intervals) is stale.  ``MERGEKIT_EVO_HEARTBEAT_S`` sets the interval (default 30 s;
use the same value on every host of a study).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from collections.abc import Sequence

HEARTBEAT_ENV = "MERGEKIT_EVO_HEARTBEAT_S"
HEARTBEAT_INTERVAL_S = 30
GRACE_INTERVALS = 4
BEAT_ATTR = "mergekit_evo:heartbeat"  # trial system attr: epoch seconds of the last beat


def heartbeat_interval_s() -> int:
    """Seconds between heartbeats (``MERGEKIT_EVO_HEARTBEAT_S``, else 30)."""
    raw = os.environ.get(HEARTBEAT_ENV)
    return max(1, int(raw)) if raw else HEARTBEAT_INTERVAL_S


def grace_period_s(interval_s: float) -> float:
    """How long a trial may go without a heartbeat before it counts as dead."""
    return GRACE_INTERVALS * interval_s


def is_journal(spec: str) -> bool:
    """A path (no ``scheme://``) names a journal file."""
    return "://" not in spec


def storage_url(url: str) -> str:
    """Pick an installed PostgreSQL driver for a bare ``postgresql://`` URL.

    SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3, while the ``postgres`` extra installs
    psycopg2; use whichever is importable.
    """
    import importlib.util

    if url.startswith("postgresql://") or url.startswith("postgres://"):
        rest = url.split("://", 1)[1]
        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
            return f"postgresql+psycopg2://{rest}"
        return f"postgresql://{rest}"
    return url


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with Optuna's heartbeat interface (which 5.0 lacks for it)."""

    def __init__(
        self, backend: JournalFileBackend, heartbeat_interval: int, grace_period: int
    ) -> None:
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, BEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = t.system_attrs.get(BEAT_ATTR)
            if beat is not None and now - float(beat) > self.grace_period:
                stale.append(t._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return None


def make_storage(spec: str) -> BaseStorage:
    """The storage a search process writes to, with heartbeats on."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    interval = heartbeat_interval_s()
    grace = int(grace_period_s(interval))
    if is_journal(spec):
        # a process killed while it holds the file lock blocks the others until the lock counts
        # as stale: keep that well inside the heartbeat's grace (Optuna's default is 30 s)
        lock = JournalFileOpenLock(spec, grace_period=min(30, 2 * interval))
        return HeartbeatJournalStorage(JournalFileBackend(spec, lock_obj=lock), interval, grace)
    url = storage_url(spec)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=interval, grace_period=grace
        )


def open_storage(spec: str) -> BaseStorage:
    """A storage to read a run (status, report); never upgrades an RDB schema."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if is_journal(spec):
        return JournalStorage(JournalFileBackend(spec, lock_obj=JournalFileOpenLock(spec)))
    return optuna.storages.RDBStorage(storage_url(spec), skip_compatibility_check=True)


def study_names_in(storage: BaseStorage, names: Sequence[str]) -> list[str]:
    """Which of ``names`` exist in ``storage`` (a stage not started yet has no study)."""
    have = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    return [n for n in names if n in have]
