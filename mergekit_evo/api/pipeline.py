"""``EvolutionConfig`` + ``Phase2Pipeline``: the write-up's pipeline object over the same search.

Every field maps onto the search config (docs/api.md has the table); a field the write-up had
that means nothing here (a genetic algorithm's rates, say) is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from mergekit_evo.api.benchmarks import benchmark_fitness_config
from mergekit_evo.api.errors import APIConfigError, Settings
from mergekit_evo.api.merge import Log, Outcome, run_merge_search
from mergekit_evo.fitness.data import MGSM_LANGUAGES
from mergekit_evo.space.vector import default_population_size

_GA = "the search is CMA-ES (Optuna), which adapts its own step size; no genetic operators"
#: settings that steer the lm-eval fitness; a Python fitness_fn= replaces them
BENCHMARK_FIELDS = ("use_real_fitness", "benchmark_name", "max_benchmark_samples")


class EvolutionConfig(Settings):
    """The pipeline's settings; each maps onto a field of the search config.

    ``num_generations`` x ``population_size`` (+ the start point) is each stage's trial count;
    ``use_cmaes`` False: Optuna's genetic NSGA-II sampler (PS only); ``use_hybrid_ps_dfs``: PS
    then DFS (``mode: ps_dfs``), over the top ``ps_candidates_multiplier`` PS candidates when
    set; ``use_real_fitness`` False: the benchmark's log-likelihood proxy (no generation);
    ``benchmark_name``: ``gsm8k``, ``mgsm`` (Japanese, the paper's) or ``mgsm_<lang>``;
    ``target_fitness_gain``: stop once the best beats the best source model by this much
    (absolute, metrics.json's ``fitness_gain``).
    """

    num_generations: int = Field(10, ge=1)
    population_size: int | None = Field(None, ge=2)
    use_cmaes: bool = True
    use_hybrid_ps_dfs: bool = False
    ps_candidates_multiplier: int | None = Field(None, ge=2)
    use_real_fitness: bool = True
    benchmark_name: str = "gsm8k"
    max_benchmark_samples: int | None = Field(100, ge=1)
    target_fitness_gain: float | None = None
    merge_method: str | None = None  # PS method; None: dare_ties with a base model, else linear
    sigma: float = Field(1 / 6, gt=0)
    seed: int = 0

    NO_MEANING = {
        "mutation_rate": _GA,
        "mutation_strength": _GA,
        "crossover_rate": _GA,
        "elite_size": _GA,
        "elitism": _GA,
        "tournament_size": _GA,
        "use_gpu": "give device= to run() (default: cuda when present)",
        "device": "give device= to run() (default: cuda when present)",
    }

    @field_validator("benchmark_name")
    @classmethod
    def _benchmark(cls, v: str) -> str:
        valid = ["gsm8k", "mgsm", *(f"mgsm_{lang}" for lang in MGSM_LANGUAGES)]
        if v not in valid:
            raise ValueError("not a shipped benchmark; valid: gsm8k, mgsm, mgsm_<lang>")
        return v

    @model_validator(mode="after")
    def _combinations(self) -> EvolutionConfig:
        if self.ps_candidates_multiplier is not None and not self.use_hybrid_ps_dfs:
            raise ValueError(
                "ps_candidates_multiplier: picks the DFS stage's PS candidates; it needs "
                "use_hybrid_ps_dfs=True"
            )
        if not self.use_cmaes and self.use_hybrid_ps_dfs:
            raise ValueError(
                "use_cmaes: False (Optuna's genetic NSGA-II) runs PS searches only; "
                "use_hybrid_ps_dfs=True needs CMA-ES"
            )
        return self

    def benchmark(self) -> tuple[str, str]:
        """(benchmark, MGSM language)."""
        if self.benchmark_name == "gsm8k":
            return "gsm8k", "ja"
        return "mgsm", self.benchmark_name.removeprefix("mgsm").lstrip("_") or "ja"

    def fitness(self) -> dict[str, Any]:
        """The search config's lm-eval fitness section."""
        name, language = self.benchmark()
        return benchmark_fitness_config(
            name,
            language=language,
            proxy=not self.use_real_fitness,
            max_samples=self.max_benchmark_samples,
        )

    def settings(self, n_dims: int) -> dict[str, Any]:
        """``optimizer``, ``budget`` (and ``ps_dfs``) for a PS genome of ``n_dims``."""
        pop = self.population_size or (default_population_size(n_dims) if self.use_cmaes else 50)
        per_stage = 1 + self.num_generations * pop
        stages = 2 if self.use_hybrid_ps_dfs else 1
        out: dict[str, Any] = {
            "optimizer": {
                "sampler": "cmaes" if self.use_cmaes else "nsgaii",
                "population_size": pop,
                "sigma0": self.sigma,
                "seed": self.seed,
            },
            "budget": {
                "max_trials": stages * per_stage,
                "target_fitness_gain": self.target_fitness_gain,
            },
        }
        if self.use_hybrid_ps_dfs:
            out["ps_dfs"] = {
                "ps_trials": per_stage,
                "ps_candidates_multiplier": self.ps_candidates_multiplier,
            }
        return out


class Phase2Pipeline:
    """``Phase2Pipeline(EvolutionConfig(...)).run(models, tokenizer=tok)`` -> the champion
    model; ``get_metrics()`` -> metrics.json's numbers plus ``fitness_gain``."""

    def __init__(self, config: EvolutionConfig | None = None) -> None:
        self.config = config or EvolutionConfig()
        self.outcome: Outcome | None = None

    def run(
        self,
        models: list[Any],
        tokenizer: Any = None,
        *,
        fitness_fn: Callable[[Any, Any], Any] | None = None,
        base_model: Any = None,
        out: str | Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
        log: Log = print,
    ) -> Any:
        """Evolve a merge of ``models``; returns the champion (a ``PreTrainedModel``).

        ``fitness_fn(model, tokenizer)`` replaces the benchmark (then leave the benchmark
        fields unset); ``out``: the run folder (default: a temporary one; rerun to resume).
        """
        c = self.config
        if fitness_fn is not None:
            clash = sorted(set(BENCHMARK_FIELDS) & c.model_fields_set)
            if clash:
                raise APIConfigError(
                    f"EvolutionConfig.{clash[0]}: set, but fitness_fn= replaces the benchmark "
                    "fitness; leave the benchmark fields unset or drop fitness_fn"
                )
        method = c.merge_method or ("dare_ties" if base_model is not None else "linear")
        ps: dict[str, Any] = {"method": method, "normalize_weights": method == "linear"}
        if method == "linear":
            ps["parameters"] = ["weight"]
        self.outcome = run_merge_search(
            models, fitness_fn=fitness_fn, fitness=c.fitness(), tokenizer=tokenizer,
            base_model=base_model, mode="ps_dfs" if c.use_hybrid_ps_dfs else "ps", ps=ps,
            settings=c.settings, out=out, device=device, dtype=dtype, log=log,
        )  # fmt: skip
        return self.outcome.model

    def _done(self) -> Outcome:
        if self.outcome is None:
            raise RuntimeError("Phase2Pipeline: call run(models, ...) first")
        return self.outcome

    def get_metrics(self) -> dict[str, Any]:
        """``baseline_fitness`` (best source), ``ps_best_fitness``, ``champion_fitness``,
        ``fitness_improvement`` (relative), ``fitness_gain`` (absolute) and the rest of
        metrics.json."""
        return dict(self._done().metrics)

    @property
    def recipe(self) -> dict[str, Any]:
        """The champion's MergeKit recipe (``best.yml``)."""
        return self._done().recipe

    @property
    def tokenizer(self) -> Any:
        return self._done().tokenizer

    @property
    def run_dir(self) -> Path:
        return self._done().run_dir
