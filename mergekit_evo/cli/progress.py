"""What ``search`` / ``worker`` show while they run: a progress bar, one line per trial, or nothing.

On a terminal (stderr is a TTY) a tqdm bar over the trial budget shows the best fitness so
far, the trial rate and the ETA (a resumed run's bar starts at the study's finished trials),
and only the lines worth keeping (baselines, new bests, failures, stage stops) scroll above
it; piped or redirected, every finished trial is one line (what logs and CI want);
``--quiet`` shows only the end-of-run table and errors; ``-v`` prints every line under the bar
and leaves the libraries' own logs on.
"""

from __future__ import annotations

import sys
from typing import Any, Literal, TextIO

import click

from mergekit_evo.search.rundir.events import ResumeLine, TrialLine

Mode = Literal["bar", "lines", "quiet"]


def choose_mode(quiet: bool, stream: TextIO | None = None) -> Mode:
    """``quiet`` wins; a bar only where stderr is a terminal."""
    if quiet:
        return "quiet"
    stream = stream or sys.stderr
    return "bar" if getattr(stream, "isatty", lambda: False)() else "lines"


class Progress:
    """A ``log`` callable for :func:`mergekit_evo.search.run.runner.run_search`."""

    def __init__(self, mode: Mode, total: int, verbose: bool = False) -> None:
        self.mode = mode
        self.verbose = verbose
        self.total = total
        self.bar: Any = None

    def _bar(self, initial: int = 0) -> Any:
        if self.bar is None:
            # tqdm.std: quiet_libraries() disables the tqdm.tqdm / tqdm.auto ones lm-eval uses
            from tqdm.std import tqdm

            self.bar = tqdm(
                total=self.total, initial=initial, file=sys.stderr, unit="trial",
                dynamic_ncols=True,
                desc="trials", bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| "
                "[{elapsed}<{remaining}, {rate_fmt}{postfix}]",
            )  # fmt: skip
        return self.bar

    def __call__(self, line: str) -> None:
        if self.mode == "quiet":
            return
        if self.mode == "lines":
            click.echo(line)
            sys.stdout.flush()
            return
        if isinstance(line, ResumeLine):  # trials finished before: the bar starts there
            if self.bar is None:
                self._bar(initial=line.done)  # not counted in the rate
            else:
                self.bar.n += line.done
                self.bar.refresh()
            self.bar.write(str(line), file=sys.stdout)
            return
        bar = self._bar()
        if isinstance(line, TrialLine):
            bar.update(1)
            if line.best is not None:
                bar.set_postfix_str(f"best {line.best:.4f}", refresh=False)
            keep = self.verbose or line.fitness is None or line.improved
        else:
            keep = True
        if keep:
            bar.write(str(line), file=sys.stdout)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
