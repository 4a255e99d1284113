"""No traceback, ever: an exception nobody expected is one line on stderr (what failed, where
the details are), exit code 1, and its traceback in RUN_DIR/error.log (or a temporary file
before the run folder exists).  The failures are forced in a real ``mergekit-evo`` process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.search.family import make_family, write_config

REPO = Path(__file__).resolve().parents[2]

#: runs ``mergekit-evo ARGS`` with one function replaced by one that raises
_DRIVER = """
import sys
import {module} as m

def boom(*args, **kwargs):
    raise RuntimeError("forced failure\\nsecond line of the message")

m.{name} = boom
from mergekit_evo.cli import main
main(sys.argv[1:], prog_name="mergekit-evo")
"""


def _run(module: str, name: str, *args: str, env: dict[str, str] | None = None):
    code = _DRIVER.format(module=module, name=name)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        timeout=300,
    )


def _one_line(proc: subprocess.CompletedProcess[str]) -> tuple[str, Path]:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    m = re.match(
        r"^Error: mergekit-evo search failed unexpectedly: RuntimeError: forced failure "
        r"\(traceback: (.+)\)$",
        lines[0],
    )
    assert m, lines[0]
    return lines[0], Path(m.group(1))


def test_a_failure_inside_a_run_goes_to_its_error_log(tmp_path):
    cfg = write_config(
        tmp_path / "ps.yml",
        make_family(tmp_path / "fam"),
        "ps",
        fitness={"function": "tests.search.fitness_fns:mean_logit_norm", "tasks": []},
        baselines=False,
    )
    run = tmp_path / "run"
    proc = _run(
        "mergekit_evo.search.run.runner", "run_stage", "search", str(cfg), "--out", str(run)
    )
    _, log = _one_line(proc)
    assert log == run / "error.log"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "second line of the message" in text
    assert " search " in text.splitlines()[0]  # the header names the command
    # the same failure again appends, so an earlier traceback is kept
    _run("mergekit_evo.search.run.runner", "run_stage", "search", str(cfg), "--out", str(run))
    assert log.read_text().count("Traceback (most recent call last)") == 2


def test_a_failure_before_the_run_folder_exists_goes_to_a_temporary_file(tmp_path):
    run = tmp_path / "run"
    proc = _run("mergekit_evo.config", "load_search_config", "search", "x.yml", "--out", str(run))
    _, log = _one_line(proc)
    try:
        assert not run.exists()  # no run folder for a run that never started
        assert log.name.startswith("mergekit-evo-error-") and log.suffix == ".log"
        assert "RuntimeError: forced failure" in log.read_text()
    finally:
        log.unlink(missing_ok=True)


def test_the_traceback_can_be_asked_for(tmp_path):
    proc = _run(
        "mergekit_evo.config",
        "load_search_config",
        "search",
        "x.yml",
        "--out",
        str(tmp_path / "run"),
        env={"MERGEKIT_EVO_TRACEBACK": "1"},
    )
    assert proc.returncode == 1 and "Traceback (most recent call last)" in proc.stderr


def test_a_failing_background_thread_is_one_line_too(tmp_path):
    code = """
import sys, threading
import click
import mergekit_evo.search.run.runner as m

def boom():
    raise RuntimeError("forced thread failure")

def run_search(*args, **kwargs):
    th = threading.Thread(target=boom, name="ticker")
    th.start()
    th.join()
    raise click.exceptions.Exit(0)

m.run_search = run_search
from mergekit_evo.cli import main
main(sys.argv[1:], prog_name="mergekit-evo")
"""
    cfg = write_config(
        tmp_path / "ps.yml",
        make_family(tmp_path / "fam"),
        "ps",
        fitness={"function": "tests.search.fitness_fns:mean_logit_norm", "tasks": []},
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "search", str(cfg), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(
        "Error: a background thread (ticker) failed unexpectedly: RuntimeError: forced thread"
    ), proc.stderr
    Path(line.rsplit("(traceback: ", 1)[1].rstrip(")")).unlink()
