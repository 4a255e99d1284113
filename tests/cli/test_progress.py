"""What a search shows while it runs: a bar on a terminal, one line per trial otherwise, -q."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

from mergekit_evo.cli import main
from mergekit_evo.cli.progress import Progress, choose_mode
from mergekit_evo.search.rundir.events import TrialLine
from tests.search.family import make_family, write_config


def _line(n: int, fit: float | None, best: float, improved: bool) -> TrialLine:
    return TrialLine(
        f"trial {n:5d}  fitness {fit}", number=n, fitness=fit, best=best, improved=improved,
        seconds=0.1,
    )  # fmt: skip


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_mode_follows_the_terminal_and_quiet():
    assert choose_mode(False, _Tty()) == "bar"
    assert choose_mode(False, io.StringIO()) == "lines"
    assert choose_mode(True, _Tty()) == "quiet"


def test_bar_counts_trials_shows_best_and_keeps_only_news(capsys: pytest.CaptureFixture[str]):
    p = Progress("bar", total=4)
    p("baseline math: 0.2600  (1.0 s)")
    p(_line(0, 0.5, 0.5, True))
    p(_line(1, 0.25, 0.5, False))
    p(_line(2, None, 0.5, False))  # failed
    p(_line(3, 0.75, 0.75, True))
    p.close()
    out, err = capsys.readouterr()
    assert "baseline math" in out and "fitness 0.5" in out and "fitness 0.75" in out
    assert "fitness 0.25" not in out and "fitness None" in out  # failures always shown
    assert "4/4" in err and "best 0.7500" in err and "trial/s" in err


def test_verbose_bar_keeps_every_line(capsys: pytest.CaptureFixture[str]):
    p = Progress("bar", total=2, verbose=True)
    p(_line(0, 0.5, 0.5, True))
    p(_line(1, 0.25, 0.5, False))
    p.close()
    assert "fitness 0.25" in capsys.readouterr().out


def test_quiet_search_prints_only_the_table(tmp_path):
    fam = make_family(tmp_path / "fam")
    cfg = write_config(tmp_path / "ps.yml", fam, "ps")
    r = CliRunner().invoke(
        main, ["search", str(cfg), "--out", str(tmp_path / "run"), "--max-trials", "2", "-q"]
    )
    assert r.exit_code == 0, r.output
    assert "trial" not in r.output.split("model")[0] and "baseline" not in r.output
    assert "champion" in r.output and "report.html" in r.output
