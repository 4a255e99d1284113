from __future__ import annotations

from pathlib import Path

import pytest
from tiny_models import make_model


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory):
    """(A, B) tiny models per architecture: A has 3 layers, B has 2 (layer counts differ).

    The norms' eps is tiny: folding W is exact up to eps, and the residual stream of a tiny
    random model is small enough (mean square ~1e-3) for eps=1e-6 to show at 1e-3.
    """
    cache: dict[str, tuple[Path, Path]] = {}

    def build(arch: str) -> tuple[Path, Path]:
        if arch not in cache:
            root = tmp_path_factory.mktemp(f"{arch}-pair")
            a, b = root / "a", root / "b"
            make_model(a, arch=arch, num_layers=3, seed=1, rms_norm_eps=1e-12)
            make_model(b, arch=arch, num_layers=2, seed=2, rms_norm_eps=1e-12)
            cache[arch] = (a, b)
        return cache[arch]

    return build
