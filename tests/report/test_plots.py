"""The fitness plot: completed trials and the best so far, pruned trials drawn apart at the
fitness they were stopped at and never counted as the best."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mergekit_evo.report import plots


def _row(stage: str, number: int, state: str, fitness: float) -> dict[str, Any]:
    return {"stage": stage, "number": str(number), "state": state, "fitness": str(fitness)}


def test_pruned_trials_are_drawn_but_never_the_best(monkeypatch: pytest.MonkeyPatch) -> None:
    figs: list[Any] = []
    monkeypatch.setattr(plots, "_png", lambda fig: figs.append(fig) or b"png")
    rows = [
        _row("ps", 0, "COMPLETE", 0.5),
        _row("ps", 1, "PRUNED", 0.9),  # stopped at a rung: high on few questions, not a winner
        _row("ps", 2, "COMPLETE", 0.6),
        _row("dfs", 0, "COMPLETE", 0.55),
        _row("dfs", 1, "PRUNED", 0.2),
    ]
    assert plots.fitness_plot(rows, {"math": 0.3}) == b"png"
    (ax,) = figs[0].axes
    marks = {c.get_label(): np.asarray(c.get_offsets()) for c in ax.collections}
    pruned = marks["pruned (fitness when stopped)"]
    assert pruned.tolist() == [[1.0, 0.9]]  # the PS stage's; the DFS stage's is unlabelled
    later = [m for label, m in marks.items() if label == "_nolegend_"]
    assert [m.tolist() for m in later] == [[[4.0, 0.2]]]  # DFS after PS's three trials
    (best,) = [line for line in ax.lines if line.get_label() == "best so far"]
    assert max(best.get_ydata()) == pytest.approx(0.6)  # the pruned 0.9 is not the best
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels.count("pruned (fitness when stopped)") == 1
