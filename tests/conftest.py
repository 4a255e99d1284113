"""Shared test set-up: the real benchmark files and the tiny-model factory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # tiny_models.py, importable from every test folder

# The real GSM8K/MGSM files live beside the checkout (never copied into it). A relative
# MERGEKIT_EVO_DATA (the README's ../shared/data) is made absolute here, so tests that change
# the working directory still find it.
os.environ.setdefault("MERGEKIT_EVO_DATA", str(TESTS.parent.parent / "shared" / "data"))
os.environ["MERGEKIT_EVO_DATA"] = str(Path(os.environ["MERGEKIT_EVO_DATA"]).resolve())
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
