"""A box of named real coordinates, and how it is exposed to Optuna.

Optuna 5 deprecates ``CmaEsSampler(x0=..., sigma0=...)``.  Instead of passing them we shape the
Optuna distributions so that the sampler's own defaults *are* our start point and step size:
``CmaEsSampler`` starts at the centre of each range with sigma = range / 6, so coordinate ``i``
is suggested on ``[x0_i - 3 s_i, x0_i + 3 s_i]`` with ``s_i = sigma0 * (high_i - low_i)`` and
clipped back into ``[low_i, high_i]`` when decoded.  With the paper's defaults (x0 = 0.5,
sigma0 = 1/6, bounds [0, 1]) the suggested range is exactly [0, 1].  Other samplers (TPE,
NSGA-II, random) get the plain bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Dim:
    """One evolved coordinate: Optuna parameter name, decoding bounds, start value."""

    name: str
    low: float
    high: float
    x0: float


class VectorSpace:
    """Named coordinates <-> Optuna parameters <-> a numpy vector."""

    def __init__(self, dims: list[Dim], sigma0: float = 1 / 6, cma: bool = True) -> None:
        names = [d.name for d in dims]
        if len(set(names)) != len(names):
            raise ValueError("duplicate coordinate names")
        self.dims = dims
        self.sigma0 = sigma0
        self.cma = cma

    def __len__(self) -> int:
        return len(self.dims)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dims]

    def suggest_range(self, d: Dim) -> tuple[float, float]:
        """The range Optuna samples ``d`` on (see module docstring)."""
        if not self.cma:
            return d.low, d.high
        s = self.sigma0 * (d.high - d.low)
        return d.x0 - 3 * s, d.x0 + 3 * s

    def distributions(self) -> dict[str, optuna.distributions.FloatDistribution]:
        """Optuna distributions (for ``study.ask(fixed_distributions=...)``)."""
        from optuna.distributions import FloatDistribution

        return {d.name: FloatDistribution(*self.suggest_range(d)) for d in self.dims}

    def start_params(self) -> dict[str, float]:
        """Optuna parameters of the start point (enqueued as the first trial)."""
        return {d.name: float(d.x0) for d in self.dims}

    def from_trial(self, trial: optuna.trial.Trial) -> np.ndarray:
        """Suggest every coordinate of ``trial`` and decode."""
        params = {d.name: trial.suggest_float(d.name, *self.suggest_range(d)) for d in self.dims}
        return self.decode(params)

    def decode(self, params: Mapping[str, float]) -> np.ndarray:
        """Optuna parameters -> vector, clipped into the bounds."""
        x = np.array([float(params[d.name]) for d in self.dims], dtype=np.float64)
        return np.clip(x, self.lows, self.highs)

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-coordinate (low, high) a trial can take: the suggest range within the bounds.

        Parameters enqueued by hand (the DFS polish) must stay inside it, or Optuna ignores them.
        """
        rng = [self.suggest_range(d) for d in self.dims]
        lo = np.maximum(self.lows, [r[0] for r in rng])
        hi = np.minimum(self.highs, [r[1] for r in rng])
        return lo, hi

    def params(self, x: np.ndarray) -> dict[str, float]:
        """Vector -> Optuna parameters (clipped into :meth:`box`), for ``enqueue_trial``."""
        lo, hi = self.box()
        xc = np.clip(np.asarray(x, dtype=np.float64), lo, hi)
        return {d.name: float(v) for d, v in zip(self.dims, xc, strict=True)}

    def x0(self) -> np.ndarray:
        return np.array([d.x0 for d in self.dims], dtype=np.float64)

    @property
    def lows(self) -> np.ndarray:
        return np.array([d.low for d in self.dims], dtype=np.float64)

    @property
    def highs(self) -> np.ndarray:
        return np.array([d.high for d in self.dims], dtype=np.float64)


def default_population_size(n: int) -> int:
    """CMA-ES default lambda = 4 + floor(3 ln n) (the paper's PS setting)."""
    import math

    return 4 + int(math.floor(3 * math.log(max(n, 1))))
