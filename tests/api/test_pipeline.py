"""EvolutionConfig: each field onto the search config; fields without a meaning refused."""

from __future__ import annotations

import pytest

from mergekit_evo.api import APIConfigError, EvolutionConfig, Phase2Pipeline


def test_fields_map_onto_the_search_config():
    c = EvolutionConfig(
        num_generations=3, population_size=6, use_hybrid_ps_dfs=True, ps_candidates_multiplier=3,
        benchmark_name="gsm8k", max_benchmark_samples=40, target_fitness_gain=0.05, seed=7,
    )  # fmt: skip
    s = c.settings(n_dims=3)
    assert s["optimizer"] == {"sampler": "cmaes", "population_size": 6, "sigma0": 1 / 6, "seed": 7}
    assert s["budget"] == {"max_trials": 2 * (1 + 3 * 6), "target_fitness_gain": 0.05}
    assert s["ps_dfs"] == {"ps_trials": 1 + 3 * 6, "ps_candidates_multiplier": 3}
    assert c.fitness() == {
        "tasks": [{"name": "evo_gsm8k_search", "require_language": None}],
        "engine": "mergekit_evo",
        "limit": 40,
    }


def test_population_default_proxy_fitness_mgsm_and_the_genetic_sampler():
    c = EvolutionConfig(num_generations=2, use_real_fitness=False, benchmark_name="mgsm_de")
    assert c.settings(n_dims=3)["budget"]["max_trials"] == 1 + 2 * 7  # 4 + floor(3 ln 3)
    assert c.fitness()["tasks"][0]["name"] == "evo_mgsm_direct_de_search_loglik"
    assert EvolutionConfig(benchmark_name="mgsm").fitness()["tasks"][0]["name"] == (
        "evo_mgsm_direct_ja_search"
    )
    ga = EvolutionConfig(use_cmaes=False, num_generations=2).settings(n_dims=3)
    assert ga["optimizer"]["sampler"] == "nsgaii" and ga["budget"]["max_trials"] == 1 + 2 * 50


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mutation_rate": 0.1}, "EvolutionConfig.mutation_rate = 0.1: the search is CMA-ES"),
        ({"ps_candidates_multiplier": 3}, "EvolutionConfig.ps_candidates_multiplier: picks"),
        ({"use_cmaes": False, "use_hybrid_ps_dfs": True}, "EvolutionConfig.use_cmaes: False"),
        ({"benchmark_name": "math"}, "EvolutionConfig.benchmark_name: not a shipped benchmark"),
        ({"num_generations": 0}, "EvolutionConfig.num_generations: Input should be greater"),
    ],
)
def test_a_field_without_meaning_here_is_a_one_line_error(kwargs, message):
    with pytest.raises(APIConfigError) as err:
        EvolutionConfig(**kwargs)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_benchmark_fields_and_a_python_fitness_clash_before_anything_runs(tmp_path):
    pipeline = Phase2Pipeline(EvolutionConfig(benchmark_name="mgsm"))
    with pytest.raises(APIConfigError, match="EvolutionConfig.benchmark_name: set, but"):
        pipeline.run(["unused"], fitness_fn=lambda m, t: 0.0, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(RuntimeError, match="call run"):
        pipeline.get_metrics()
