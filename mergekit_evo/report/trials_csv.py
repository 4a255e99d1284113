"""``trials.csv``: one row per trial of every stage (number, state, fitness, params, seconds)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

_FIXED = [
    "stage", "number", "state", "fitness", "best_so_far", "questions", "start", "seconds",
    "generation", "yaml",
]  # fmt: skip
#: the columns that are not a trial's coefficients
FIXED_COLUMNS = frozenset([*_FIXED, "fail_reason"])


def trial_rows(studies: Sequence[tuple[str, optuna.Study]]) -> list[dict[str, object]]:
    """Rows (dicts) for each trial of each ``(stage, study)``, in stage then trial order.
    Queued trials never asked (start points a stopped stage did not reach) are not rows."""
    rows: list[dict[str, object]] = []
    for stage, study in studies:
        best: float | None = None
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            if t.state.name == "WAITING":
                continue
            fit = t.user_attrs.get("fitness")
            if fit is not None and t.state.name == "COMPLETE":
                best = fit if best is None else max(best, fit)
            if t.state.name == "PRUNED":  # its fitness over the questions it was scored on
                fit = t.user_attrs.get("fitness_partial")
            gen = next((v for k, v in t.system_attrs.items() if k.endswith(":generation")), "")
            row: dict[str, object] = {
                "stage": stage,
                "number": t.number,
                "state": t.state.name,
                "fitness": "" if fit is None else fit,
                "best_so_far": "" if best is None else best,
                "questions": t.user_attrs.get("questions", ""),
                "start": _start(t),
                "seconds": t.user_attrs.get("seconds", ""),
                "generation": gen,
                "yaml": t.user_attrs.get("yaml", ""),
                "fail_reason": t.user_attrs.get("fail_reason", ""),
            }
            if t.values is not None and len(t.values) > 1:
                for i, v in enumerate(t.values):
                    row[f"objective_{i}"] = v
            for k, v in (t.user_attrs.get("coefficients") or {}).items():
                row[k] = v
            rows.append(row)
    return rows


def _start(t: optuna.trial.FrozenTrial) -> str:
    """``start:<name>`` for a standard start point (search/stage/starts.py), else ""."""
    if not t.user_attrs.get("start_point"):
        return ""
    return f"start:{t.user_attrs.get('start_label') or 'x0'}"


def trials_csv(studies: Sequence[tuple[str, optuna.Study]]) -> str:
    """The CSV text (columns: fixed ones, then every parameter seen, in first-seen order)."""
    rows = trial_rows(studies)
    cols = list(_FIXED) + ["fail_reason"]
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, restval="", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
