"""The processes of one run on one host: one worker per GPU (or N on a CPU host).

``--gpus 0,1,2`` (or ``--workers 3``): this process works on the first GPU itself and starts one
``mergekit-evo worker`` child per other GPU, each seeing only its own GPU through
``CUDA_VISIBLE_DEVICES``; all share the run's study through its storage (Optuna coordinates
them, nothing else does).  Children read the run's effective config (CLI overrides applied)
from ``RUN_DIR/work/worker-config.yml`` and die with their parent (``PR_SET_PDEATHSIG``), so a
killed run leaves no orphan; the rerun then recovers their trials.  Their output lines come
through this process, prefixed with the GPU.  A child that dies while the run goes on is
started again for its GPU (at most :data:`MAX_RESTARTS` times per GPU, each logged).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

    from mergekit_evo.config import SearchConfig
    from mergekit_evo.search.rundir.files import RunDir

PARENT_ENV = "MERGEKIT_EVO_PARENT_PID"
#: how often a dead child worker is started again for its GPU before the GPU is left idle
MAX_RESTARTS = 3


def resolve_gpus(spec: str) -> list[str]:
    """``"0,1"`` -> ["0", "1"]; ``"all"``: CUDA_VISIBLE_DEVICES if set, else every GPU that
    ``nvidia-smi`` lists (asked without initialising CUDA in this process)."""
    if spec.strip().lower() != "all":
        gpus = [g.strip() for g in spec.split(",") if g.strip()]
        if not gpus:
            raise ValueError("--gpus needs GPU ids (0,1,...) or 'all'")
        return gpus
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        return [g.strip() for g in visible.split(",") if g.strip()]
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise ValueError(f"--gpus all: cannot list GPUs with nvidia-smi ({e})") from None
    gpus = [line.strip() for line in out.splitlines() if line.strip()]
    if not gpus:
        raise ValueError("--gpus all: nvidia-smi lists no GPU")
    return gpus


def started_by_run() -> bool:
    """Is this process a worker that a run started (sharing the run's directory)?"""
    return bool(os.environ.get(PARENT_ENV))


def die_with_parent() -> None:
    """In a child: get SIGKILL when the run that started it dies (Linux); no-op elsewhere."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() != int(parent):  # it died before we asked
        os._exit(1)


_TRIAL = re.compile(
    r"^trial\s+(?P<n>\d+)\s+(?:fitness\s+(?P<f>\S+)\s+best\s+(?P<b>\S+)(?P<star>\s+\*)?"
    r"|FAILED)(?:.*\((?P<s>[\d.]+) s\))?"
)


def relayed(label: str, line: str) -> str:
    """A child's output line, prefixed; its trial lines stay trial lines (a progress bar over
    the study's budget counts them)."""
    from mergekit_evo.search.rundir.events import TrialLine

    text = f"[{label}] {line}"
    m = _TRIAL.match(line)
    if m is None:
        return text
    fitness = float(m["f"]) if m["f"] else None
    return TrialLine(
        text, number=int(m["n"]), fitness=fitness, best=float(m["b"]) if m["b"] else None,
        improved=bool(m["star"]), seconds=float(m["s"]) if m["s"] else 0.0,
    )  # fmt: skip


def _how_it_ended(rc: int) -> str:
    """``died (SIGKILL)`` or ``exited with status 1`` for a process's return code."""
    if rc >= 0:
        return f"exited with status {rc}"
    try:
        return f"died ({signal.Signals(-rc).name})"
    except ValueError:  # a signal Python has no name for (a real-time one)
        return f"died (signal {-rc})"


@dataclass
class _Child:
    """One child worker slot (a GPU): its current process and how often it was restarted."""

    index: int
    label: str
    proc: subprocess.Popen[str] | None = None
    restarts: int = 0
    pids: list[int] = field(default_factory=list)  # every process this slot has had


class Fleet:
    """This process plus one child worker per further GPU (``gpus[0]`` is this process).

    A child that dies while the run goes on (killed, out of host memory, a crash) is started
    again for its GPU, at most ``max_restarts`` times per GPU, so the GPU does not sit idle for
    the rest of the run; its trial is re-asked once its heartbeat is stale, as before."""

    def __init__(
        self,
        gpus: list[str | None],
        log: Callable[[str], None] = print,
        max_restarts: int = MAX_RESTARTS,
        restart_delay_s: float = 2.0,
    ) -> None:
        if not gpus:
            raise ValueError("a fleet needs at least one worker")
        self.gpus = gpus
        self.log = log
        self.max_restarts = max_restarts
        self.restart_delay_s = restart_delay_s
        self.argv: list[str] = []
        self._children: list[_Child] = []
        self._watchers: list[threading.Thread] = []
        self._lock = threading.Lock()  # spawning vs stopping
        self._stopping = threading.Event()  # the run is ending: a child that dies stays dead

    @property
    def children(self) -> list[tuple[str, subprocess.Popen[str]]]:
        """(label, current process) of each child."""
        return [(c.label, c.proc) for c in self._children if c.proc is not None]

    @property
    def restarts(self) -> dict[str, int]:
        """Restarts so far, by child label."""
        return {c.label: c.restarts for c in self._children}

    @classmethod
    def on_gpus(cls, gpus: list[str], log: Callable[[str], None] = print) -> Fleet:
        return cls(list(gpus), log)

    @classmethod
    def on_cpu(cls, n: int, log: Callable[[str], None] = print) -> Fleet:
        return cls([None] * n, log)

    def pin_self(self) -> None:
        """Show this process only its GPU (call before anything initialises CUDA)."""
        if self.gpus[0] is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = self.gpus[0]

    def _label(self, i: int) -> str:
        g = self.gpus[i]
        return f"gpu {g}" if g is not None else f"worker {i}"

    def child_env(self, i: int) -> dict[str, str]:
        """Child ``i``'s environment: only its GPU visible, and who its parent is."""
        env = {**os.environ, PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
        gpu = self.gpus[i]
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        return env

    def start(self, rundir: RunDir, storage: str, cfg: SearchConfig) -> None:
        """Write the effective config and start the children on ``storage``."""
        if len(self.gpus) < 2:
            return
        rundir.write_yaml(
            rundir.worker_config,
            cfg.model_copy(update={"storage": storage}).model_dump(mode="json", exclude_none=True),
        )
        argv = [sys.executable, "-m", "mergekit_evo", "worker", str(rundir.worker_config)]
        self.start_children(argv + ["--storage", storage, "--out", str(rundir.root)])

    def start_children(self, argv: list[str]) -> None:
        """Start one child per further GPU running ``argv``, each watched by a thread that
        relays its lines and restarts it if it dies before the run ends."""
        self.argv = argv
        for i in range(1, len(self.gpus)):
            child = _Child(i, self._label(i))
            self._spawn(child)
            self._children.append(child)
            th = threading.Thread(target=self._watch, args=(child,), daemon=True)
            th.start()
            self._watchers.append(th)
        self.log(
            f"workers: {self._label(0)} (this process, pid {os.getpid()}), "
            + ", ".join(f"{label} (pid {p.pid})" for label, p in self.children)
        )

    def _spawn(self, child: _Child) -> None:
        child.proc = subprocess.Popen(
            self.argv,
            env=self.child_env(child.index),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        child.pids.append(child.proc.pid)

    def wait_ready(self, study: optuna.Study, timeout_s: float = 900.0) -> None:
        """Wait until every live child has registered in ``study`` (it reached the stage)."""
        from mergekit_evo.search.fleet.workers import registry

        deadline = time.monotonic() + timeout_s
        while True:
            seen = {w.get("pid") for w in registry(study).values()}
            missing = [p.pid for _, p in self.children if p.poll() is None and p.pid not in seen]
            if not missing:
                return
            if time.monotonic() > deadline:
                self.log(f"workers {missing} not ready after {timeout_s:.0f} s: starting without")
                return
            time.sleep(0.5)

    def _watch(self, child: _Child) -> None:
        """Relay the child's lines; when it dies while the run goes on, start it again."""
        while True:
            proc = child.proc
            assert proc is not None and proc.stdout is not None
            for line in proc.stdout:
                self.log(relayed(child.label, line.rstrip()))
            rc = proc.wait()
            if rc == 0:
                return
            how = _how_it_ended(rc)
            if self._stopping.is_set():
                self.log(f"[{child.label}] {how}")
                return
            if child.restarts >= self.max_restarts:
                self.log(
                    f"[{child.label}] {how}; not restarted ({self.max_restarts} restarts used): "
                    "its trial is re-asked by the other workers once its heartbeat is stale"
                )
                return
            child.restarts += 1
            self.log(
                f"[{child.label}] {how}; its trial is re-asked once its heartbeat is stale; "
                f"restarting it ({child.restarts} of {self.max_restarts})"
            )
            if self._stopping.wait(self.restart_delay_s):  # the run ended meanwhile
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self._spawn(child)
                except OSError as e:  # no process could be started (memory, limits)
                    self.log(f"[{child.label}] could not be restarted: {e}")
                    return
            assert child.proc is not None
            self.log(f"[{child.label}] restarted (pid {child.proc.pid})")

    def wait(self, timeout_s: float = 300.0) -> None:
        """Let the children finish (they stop with the study's budget), then stop stragglers.
        From here on a child that dies is not restarted (the run is ending)."""
        with self._lock:
            self._stopping.set()
        for child in self._children:
            proc = child.proc
            if proc is None:
                continue
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.log(f"[{child.label}] still running after the search ended: stopping it")
                self._stop(proc)
        for th in self._watchers:
            th.join(timeout=5)

    def abort(self) -> None:
        """The run failed or was interrupted: stop the children (their trials are re-queued)."""
        with self._lock:
            self._stopping.set()
        for _, proc in self.children:
            if proc.poll() is None:
                self._stop(proc)

    @staticmethod
    def _stop(proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGINT)  # fails its trial as interrupted and re-queues it
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
