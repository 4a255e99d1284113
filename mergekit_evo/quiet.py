"""One line per step: silence library chatter and per-request progress bars.

A search scores hundreds of candidates; lm-eval draws a progress bar per request batch and
transformers / datasets / MergeKit log per load, which buries the one line per trial.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

_LOGGERS = ("lm_eval", "lm-eval", "mergekit", "optuna", "datasets", "transformers")


def quiet_libraries() -> None:
    """Silence progress bars and library logs below ERROR (call once, before scoring)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    import datasets
    import tqdm
    import tqdm.auto
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)

    # lm-eval creates its per-request bars from tqdm directly; TQDM_DISABLE set after tqdm is
    # imported has no effect, so disable them at construction
    class _Silent(tqdm.tqdm):
        def __init__(self, *a: Any, **k: Any) -> None:
            k["disable"] = True
            super().__init__(*a, **k)

    tqdm.tqdm = _Silent  # type: ignore[misc]
    tqdm.auto.tqdm = _Silent  # type: ignore[misc]
