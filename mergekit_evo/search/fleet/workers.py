"""Who works on a study: each process registers itself (host, pid, GPU) in the study.

The registry is plain study user attributes, one key per process (``worker:HOST:PID``), so
processes never overwrite each other's entry.  ``last_seen`` is refreshed at every trial and
every heartbeat interval, so ``mergekit-evo status`` tells a silent (dead) worker from a busy
or idle one.  Each trial records the key of the process that ran it (trial user attr
``worker``).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mergekit_evo.search.fleet.periodic import every
from mergekit_evo.search.fleet.storage import heartbeat_interval_s

if TYPE_CHECKING:
    import optuna

PREFIX = "worker:"
TRIAL_ATTR = "worker"


class Worker:
    """This process, as other processes and ``status`` see it."""

    def __init__(self, host: str, pid: int, gpu: str, role: str) -> None:
        self.host = host
        self.pid = pid
        self.gpu = gpu  # CUDA_VISIBLE_DEVICES of the process, or "cpu"
        self.role = role  # "search" (the leader) or "worker"
        self._last: tuple[optuna.Study, str, int | None] | None = None

    @classmethod
    def this_process(cls, role: str, device: str) -> Worker:
        gpu = "cpu"
        if device.startswith("cuda"):
            gpu = os.environ.get("CUDA_VISIBLE_DEVICES") or device
        return cls(socket.gethostname(), os.getpid(), gpu, role)

    @property
    def key(self) -> str:
        return f"{PREFIX}{self.host}:{self.pid}"

    def report(self, study: optuna.Study, state: str, trial: int | None = None) -> None:
        """Publish what this process is doing now (``state``: trial, waiting, stopped: ...)."""
        self._last = (study, state, trial)
        study.set_user_attr(
            self.key,
            {
                "host": self.host,
                "pid": self.pid,
                "gpu": self.gpu,
                "role": self.role,
                "state": state,
                "trial": trial,
                "last_seen": time.time(),
                "heartbeat_s": heartbeat_interval_s(),
            },
        )

    @contextmanager
    def presence(self, interval_s: float) -> Iterator[None]:
        """Refresh ``last_seen`` every ``interval_s`` while this process lives, busy or idle."""

        def beat() -> None:
            last = self._last
            if last is not None:
                self.report(*last)

        with every(interval_s, beat):
            yield


def registry(study: optuna.Study) -> dict[str, dict[str, Any]]:
    """Every process that worked on ``study``, by key."""
    return {k: v for k, v in study.user_attrs.items() if k.startswith(PREFIX)}
