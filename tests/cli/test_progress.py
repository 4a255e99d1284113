"""What a search shows while it runs: a bar on a terminal, one line per trial otherwise, -q."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

from mergekit_evo.cli import main
from mergekit_evo.cli.progress import Progress, choose_mode
from mergekit_evo.search.rundir.events import ResumeLine, TrialLine
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


def test_bar_starts_at_trials_finished_before(capsys: pytest.CaptureFixture[str]):
    p = Progress("bar", total=10)
    p(ResumeLine("resume (ps): 6 trial(s) of the budget already finished", stage="ps", done=6))
    p(_line(6, 0.5, 0.5, True))
    p(ResumeLine("resume (dfs): 2 trial(s) ...", stage="dfs", done=2))  # a second stage
    p.close()
    out, err = capsys.readouterr()
    assert "9/10" in err and "resume (ps)" in out


def test_a_resumed_search_counts_the_study_trials(tmp_path, capsys: pytest.CaptureFixture[str]):
    """The bar of a resumed run counts the trials the study finished before, not only this
    process's (it used to show 2/4 at the end of a run resumed after 2 trials)."""
    from mergekit_evo.config import load_search_config
    from mergekit_evo.search.run.runner import run_search

    fam = make_family(tmp_path / "fam")
    cfg_path = write_config(
        tmp_path / "ps.yml",
        fam,
        "ps",
        fitness={"function": "tests.search.fitness_fns:mean_logit_norm", "tasks": []},
        baselines=False,
        start_points={"enabled": False},
    )
    cfg = load_search_config(cfg_path)
    run = tmp_path / "run"
    run_search(
        cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"max_trials": 2})}),
        run,
        log=lambda s: None,
    )
    capsys.readouterr()
    bar = Progress("bar", total=4)
    run_search(
        cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"max_trials": 4})}),
        run,
        log=bar,
    )
    bar.close()
    out, err = capsys.readouterr()
    assert "resume (ps): 2 trial(s) of the budget already finished" in out
    last = [s for s in err.replace("\r", "\n").splitlines() if s.startswith("trials")][-1]
    assert last.startswith("trials 4/4"), last  # was 2/4: this process's trials only
