"""One run directory, one owner: a second search on a RUN_DIR a live process holds is refused in
one line; a SIGKILLed holder leaves nothing stuck."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mergekit_evo.cli import main
from mergekit_evo.search.rundir.lock import RunDirBusy, RunDirLock
from tests.search.family import write_config

HOLD = """
import sys, time
from mergekit_evo.search.rundir.lock import RunDirLock
lock = RunDirLock(sys.argv[1]); lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def _holder(run: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_live_holder_refuses_and_dead_holder_frees(tmp_path):
    run = tmp_path / "run"
    proc = _holder(run)
    try:
        with pytest.raises(
            RunDirBusy, match=rf"in use by another mergekit-evo process \(pid {proc.pid} on "
        ):
            RunDirLock(run).acquire()
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # no clean-up runs: the kernel drops the lock
        proc.wait()
    with RunDirLock(run) as lock:
        assert lock.path.read_text().startswith(f"pid {os.getpid()} ")
    with RunDirLock(run):  # released on exit: taken again
        pass


def test_second_search_on_a_held_run_dir_is_refused(family, tmp_path):
    cfg = write_config(tmp_path / "ps.yml", family, "ps")
    run = tmp_path / "run"
    proc = _holder(run)
    try:
        t0 = time.monotonic()
        res = CliRunner().invoke(main, ["search", str(cfg), "--out", str(run)])
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    out = res.output.strip()
    assert res.exit_code == 1, out
    assert out.startswith("Error: ") and len(out.splitlines()) == 1, out
    assert f"pid {proc.pid}" in out and "another --out" in out
    assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing of the search written
    assert time.monotonic() - t0 < 60  # refused before any trial
