"""Failed trials as a whole: when a run of them stops the search, and how a failed search ends.

A bad candidate fails its trial and the search goes on (``search/stage/loop.py``).  But a search in
which *every* candidate fails (a broken model folder, a scorer that cannot run) must not burn
its budget and then report success: after ``budget.max_consecutive_failures`` failed trials in a
row it stops, and a search that ends with no completed trial raises :class:`SearchFailed`
(the CLI exits non-zero) after writing ``trials.csv`` with every reason, and no ``best.yml``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

#: the stop reason's prefix when a run of failed trials ended the stage
FAILURE_STOP = "failures"


class SearchFailed(RuntimeError):
    """The search ended without a usable result; the message summarises why."""


def _skipped(t: optuna.trial.FrozenTrial) -> bool:
    """Killed (interrupted) or given back unevaluated over the budget: no outcome."""
    return bool(t.user_attrs.get("interrupted") or t.user_attrs.get("over_budget"))


def _failed(t: optuna.trial.FrozenTrial) -> bool:
    return t.state.name == "FAIL" and not _skipped(t)


def failure_streak(
    trials: Iterable[optuna.trial.FrozenTrial], since: datetime | None = None
) -> list[optuna.trial.FrozenTrial]:
    """The failed trials that finished last, in a row (completion order), newest last.

    Interrupted trials (a killed process) are neither failures nor successes and are skipped;
    only trials started at or after ``since`` count, so a resumed search (the user fixed the
    cause) starts a fresh streak.
    """
    done = [
        t
        for t in trials
        if t.state.name in ("COMPLETE", "FAIL")
        and not _skipped(t)
        and t.datetime_complete is not None
        and (since is None or (t.datetime_start is not None and t.datetime_start >= since))
    ]
    done.sort(key=lambda t: (t.datetime_complete, t.number))
    streak: list[optuna.trial.FrozenTrial] = []
    for t in reversed(done):
        if not _failed(t):
            break
        streak.append(t)
    return streak[::-1]


def streak_reason(
    trials: Sequence[optuna.trial.FrozenTrial], limit: int | None, since: datetime | None
) -> str | None:
    """The stop reason once ``limit`` trials in a row failed, else None."""
    if not limit:
        return None
    streak = failure_streak(trials, since)
    if len(streak) < limit:
        return None
    return (
        f"{FAILURE_STOP}: {len(streak)} trials in a row failed "
        f"(budget.max_consecutive_failures {limit})"
    )


def _short(reason: str) -> str:
    line = (reason or "unknown").strip().splitlines()[0] if reason.strip() else "unknown"
    return line if len(line) <= 160 else line[:157] + "..."


def reasons_summary(studies: Sequence[tuple[str, optuna.Study]], top: int = 5) -> list[str]:
    """The most frequent failure reasons over every stage, as ``"12x ValueError: ..."`` lines."""
    counts: Counter[str] = Counter()
    for _, study in studies:
        for t in study.get_trials(deepcopy=False):
            if _failed(t):
                counts[_short(str(t.user_attrs.get("fail_reason", "")))] += 1
    return [f"{n}x {reason}" for reason, n in counts.most_common(top)]


def failure_message(
    studies: Sequence[tuple[str, optuna.Study]],
    stop_reasons: dict[str, str],
    completed: int,
    trials_csv: str,
) -> str:
    """The summary a failed search ends with: what stopped it, the top reasons, where to look."""
    failed = sum(_failed(t) for _, s in studies for t in s.get_trials(deepcopy=False))
    streak = [r for r in stop_reasons.values() if r.startswith(FAILURE_STOP)]
    head = (
        f"search stopped: {streak[0].removeprefix(FAILURE_STOP + ': ')}"
        if streak
        else f"search failed: no trial completed ({failed} failed)"
    )
    if completed and streak:
        head += f"; {completed} trial(s) had completed before"
    lines = [head, "failure reasons (count x first line):"]
    lines += [f"  {r}" for r in reasons_summary(studies)] or ["  (none recorded)"]
    lines.append(f"every trial and its reason: {trials_csv}")
    return "\n".join(lines)
