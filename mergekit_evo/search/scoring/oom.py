"""Out of GPU memory while merging or scoring: retry once, then fail the trial.

A long search meets candidates that need more memory than the ones before (a deeper DFS path,
a longer generation, a merge whose method holds more tensors at once); one such candidate must
cost a retry, and at worst its own trial, never the search.  Scoring retries at half the batch;
merging retries once with the allocator's cache emptied (what the failed attempt left behind is
freed first).  The search loop already turns any exception into a failed trial; these wrappers
only add the one retry and a reason that says what happened.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class CandidateOutOfMemory(RuntimeError):
    """Scoring ran out of accelerator memory at the configured batch size and at half of it."""


def is_out_of_memory(err: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError (also raised by torch for other accelerators), or the
    RuntimeError spelling older code paths and MPS use; checked by name so torch is not needed."""
    if any(c.__name__ == "OutOfMemoryError" for c in type(err).__mro__):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def free_accelerator_memory() -> None:
    """Drop what the failed attempt left cached, so the retry starts from a clean allocator."""
    gc.collect()
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def score_with_oom_retry(
    score: Callable[[int | None], T], batch_size: int, log: Callable[[str], None] | None = None
) -> T:
    """``score(None)`` (the configured batch size); on out-of-memory, ``score(batch_size // 2)``
    once; a second out-of-memory raises :class:`CandidateOutOfMemory` (a failed trial)."""
    try:
        return score(None)
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        first = err
    free_accelerator_memory()
    half = max(1, batch_size // 2)
    if log is not None:
        log(f"out of memory at batch size {batch_size}; retrying once at {half}")
    try:
        return score(half)
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        free_accelerator_memory()
        raise CandidateOutOfMemory(
            f"out of accelerator memory at batch size {batch_size} and again at {half} "
            f"({type(first).__name__}); lower fitness.batch_size or max_gen_toks"
        ) from err


def build_with_oom_retry(build: Callable[[], T], log: Callable[[str], None] | None = None) -> T:
    """``build()``; on out-of-memory, free what the attempt left and ``build()`` once more; a
    second out-of-memory raises :class:`CandidateOutOfMemory` (a failed trial)."""
    try:
        return build()
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        first = err
    free_accelerator_memory()
    if log is not None:
        log("out of memory while merging; retrying once after freeing cached memory")
    try:
        return build()
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        free_accelerator_memory()
        raise CandidateOutOfMemory(
            f"out of accelerator memory while merging, and again after freeing cached memory "
            f"({type(first).__name__}); merge on a larger device or use candidates: disk"
        ) from err
