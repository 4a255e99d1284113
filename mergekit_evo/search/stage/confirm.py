"""The winner's curse: a stage's champion is picked on questions no candidate was searched on.

The best of many candidates scored on the same questions is the one those questions flatter
most; its fitness overstates it (issue 17: on the zoo, a 50-question fitness ranked two merges
one way while 400 held-out questions ranked them the other). So at the end of a stage the
``search`` process scores its ``top_k`` candidates (distinct recipes, by fitness) once more on
the confirm slice - questions of the search split after the fitness questions, never part of
any fitness, never the report split - and the champion is the one with the best accuracy over
fitness and confirm questions together (the pooled accuracy). The scores live in the study's
user attrs (a finished trial cannot take attributes), so a resumed run does not score again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mergekit_evo.search.fleet.budget import fitness_of

if TYPE_CHECKING:
    import optuna

CONFIRM_ATTR = "confirm"  # study user attr: {"<trial number>": {"score": s, "questions": n}}

#: (recipe, workdir) -> (confirm accuracy, confirm questions)
Confirm = Callable[[dict[str, Any], Path], tuple[float, int]]


def top_trials(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """The ``k`` best completed trials by fitness, one per distinct recipe (ties: earliest)."""
    from optuna.trial import TrialState

    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if fitness_of(t) is not None and t.user_attrs.get("recipe")
    ]
    done.sort(key=lambda t: (-float(fitness_of(t) or 0.0), t.number))
    out: list[optuna.trial.FrozenTrial] = []
    seen: set[str] = set()
    for t in done:
        key = json.dumps(t.user_attrs["recipe"], sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(t)
        if len(out) == k:
            break
    return out


def confirmed(study: optuna.Study) -> dict[int, dict[str, float]]:
    """The confirm scores a study holds, by trial number."""
    return {int(k): v for k, v in (study.user_attrs.get(CONFIRM_ATTR) or {}).items()}


def confirm_stage(
    study: optuna.Study,
    confirm: Confirm,
    top_k: int,
    workdir: Path,
    log: Callable[[str], None],
    label: str = "",
) -> dict[int, dict[str, float]]:
    """Score the stage's top candidates on the confirm slice (those not scored yet).

    A candidate that fails here (out of memory twice, a scorer error) fails only its confirm:
    it is logged and left unconfirmed (out of the champion pick while others are confirmed;
    a resumed run tries it again), and the search goes on."""
    done = {str(k): v for k, v in confirmed(study).items()}
    what = f"confirm{f' ({label.rstrip(chr(45))})' if label else ''}"
    for t in top_trials(study, top_k):
        if str(t.number) in done:
            continue
        try:
            score, n = confirm(t.user_attrs["recipe"], workdir / f"confirm-{label}{t.number:05d}")
        except Exception as e:  # a bad candidate fails its confirm, not the search
            first = (str(e).strip().splitlines() or [""])[0][:200]
            log(f"{what} trial {t.number:5d}  FAILED  {type(e).__name__}: {first}")
            continue
        done[str(t.number)] = {"score": score, "questions": n}
        study.set_user_attr(CONFIRM_ATTR, done)  # after each: a killed run keeps what it did
        log(
            f"{what} trial {t.number:5d}  {score:.4f} on {n} questions  "
            f"(fitness {fitness_of(t):.4f})"
        )
    return confirmed(study)


def pooled(t: optuna.trial.FrozenTrial, entry: dict[str, float] | None) -> float | None:
    """Accuracy over the trial's fitness and confirm questions together (None: unconfirmed)."""
    f, n = fitness_of(t), t.user_attrs.get("questions")
    if entry is None or f is None or not n:
        return None
    c, m = float(entry["score"]), int(entry["questions"])
    return (f * int(n) + c * m) / (int(n) + m)


def champion(
    studies: Sequence[tuple[str, optuna.Study]],
) -> tuple[str, optuna.trial.FrozenTrial, float | None] | None:
    """(stage, trial, pooled accuracy) of the run's champion: the best pooled accuracy over
    every confirmed trial of every stage (ties: the earlier stage, then the earlier trial);
    without confirm scores, the last stage's best fitness (an empty stage hands the title to
    the stage before it)."""
    best: tuple[str, optuna.trial.FrozenTrial, float | None] | None = None
    for stage, study in studies:
        scores = confirmed(study)
        if not scores:
            continue
        trials = study.get_trials(deepcopy=False)
        for number, entry in sorted(scores.items()):
            p = pooled(trials[number], entry)
            if p is not None and (best is None or p > (best[2] or 0.0)):
                best = (stage, trials[number], p)
    if best is not None:
        return best
    from mergekit_evo.search.stage.loop import best_trial

    for stage, study in reversed(studies):
        b = best_trial(study)
        if b is not None:
            return stage, b, None
    return None
