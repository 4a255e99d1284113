"""One run directory, one owner: an ``fcntl`` lock on ``RUN_DIR/.lock`` for as long as a search
(or a worker, in its own ``--out``) runs.

Two processes writing one run directory would interleave ``best.yml``, ``trials/`` and the
SQLite study's "RUNNING trials are dead" recovery (each would fail the other's live trials).
``flock`` is released by the kernel when the holder dies, SIGKILL included, so a crashed search
never leaves the directory stuck; the file keeps the holder's pid and host for the message.
Workers on other hosts share the study through its storage, never a directory.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from types import TracebackType

LOCK_NAME = ".lock"


class RunDirBusy(RuntimeError):
    """Another live process holds the run directory."""


class RunDirLock:
    """Exclusive, non-blocking lock on a run directory (a context manager)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`RunDirBusy` naming the holder; creates ``root``."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read(fd)
            os.close(fd)
            raise RunDirBusy(
                f"{self.root} is in use by another mergekit-evo process ({holder}); wait for it "
                "to finish, or give this one another --out (workers share a search through "
                "--storage, each with its own --out)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Let go (the file stays: deleting it would race a process that just opened it)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"
