"""Progress lines that carry their numbers: a finished trial is text for a plain log and data
for a progress display (``mergekit_evo.cli.progress``), without a second callback."""

from __future__ import annotations

from typing import Any


class TrialLine(str):
    """The line a finished (or failed) trial logs, with its fields as attributes."""

    number: int
    fitness: float | None  # None: the trial failed
    best: float | None
    improved: bool
    seconds: float

    def __new__(cls, text: str, **fields: Any) -> TrialLine:
        obj = super().__new__(cls, text)
        obj.__dict__.update(fields)
        return obj


class ResumeLine(str):
    """A stage found trials of its budget already finished (a resumed run, or a worker that
    joined late): a progress bar over the budget starts from them."""

    stage: str
    done: int

    def __new__(cls, text: str, *, stage: str, done: int) -> ResumeLine:
        obj = super().__new__(cls, text)
        obj.__dict__.update(stage=stage, done=done)
        return obj
