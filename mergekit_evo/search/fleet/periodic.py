"""A call repeated in a background thread while a block runs (trial heartbeats, worker presence).

Storage calls from such a thread may fail for a moment (a lock, a dropped connection); the
failure is swallowed and the next tick tries again, since a missed beat is harmless and a
raised one would kill the thread silently anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def every(interval_s: float, tick: Callable[[], None], *, at_start: bool = False) -> Iterator[None]:
    """Call ``tick`` every ``interval_s`` seconds (and once at once if ``at_start``) until the
    block ends; the thread is a daemon and is joined for at most 5 s."""
    stop = threading.Event()

    def quietly() -> None:
        try:
            tick()
        except Exception:
            pass

    def loop() -> None:
        if at_start:
            quietly()
        while not stop.wait(interval_s):
            quietly()

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join(timeout=5)
