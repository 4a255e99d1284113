"""Bad search configs: each invalid field is named (path, value, what is valid) before any
model is loaded, and a failed validation leaves no run directory behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from tiny_models import make_model

from mergekit_evo.config import ConfigError, load_search_config, parse_search_config
from mergekit_evo.preflight import load_checked_config


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("cfgmodels")
    out = {}
    for i, name in enumerate(("base", "math", "lang")):
        make_model(root / name, num_layers=2, seed=i)
        out[name] = str(root / name)
    return out


def _base(models: dict[str, str], mode: str = "ps") -> dict:
    return {
        "mode": mode,
        "models": {"math": models["math"], "lang": models["lang"]},
        "base_model": models["base"],
        "fitness": {"tasks": ["evo_gsm8k_search_loglik"], "limit": 2},
    }


def _set(doc: dict, dotted: str, value: object) -> dict:
    cur = doc
    keys = dotted.split(".")
    for k in keys[:-1]:
        cur = cur.setdefault(k, {})
    cur[keys[-1]] = value
    return doc


CASES = [
    # (mode, field to set, bad value, expected field path in the error, words of the message)
    ("ps", "ps.method", "nope", "ps.method", ["nope", "dare_ties"]),
    ("ps", "ps.parameters", ["weight", "bogus"], "ps.parameters.1", ["bogus", "density"]),
    ("ps", "ps.bounds", {"weight": [1.0, 0.0]}, "ps.bounds", ["low < high"]),
    ("ps", "ps.granularity", "tensor", "ps.granularity", ["'model'", "'layers'"]),
    (
        "ps",
        "ps",
        {"granularity": "layers", "layer_group_size": 3},
        "ps.layer_group_size",
        ["does not divide"],
    ),
    ("ps", "optimizer.sampler", "sgd", "optimizer.sampler", ["sgd", "cmaes"]),
    ("ps", "optimizer.sigma0", -1, "optimizer.sigma0", ["greater than 0"]),
    ("ps", "budget.max_trials", 0, "budget.max_trials", ["greater than or equal to 1"]),
    ("ps", "budget.patience", "soon", "budget.patience", ["soon"]),
    ("ps", "fitness.tasks", [], "fitness.tasks", ["at least 1"]),
    ("ps", "fitness.tasks", [{"name": "x", "weight": -1}], "fitness.tasks.0.weight", ["-1"]),
    ("ps", "fitness.limit", -5, "fitness.limit", ["-5"]),
    ("ps", "models.math", "/no/such/model", "models.math", ["/no/such/model"]),
    ("ps", "base_model", "./missing-base", "base_model", ["missing-base"]),
    ("ps", "colour", "blue", "colour", ["unknown field"]),
    ("ps", "fitness.include_path", ["no-tasks-here"], "fitness.include_path.0", ["no-tasks"]),
    ("dfs", "dfs.window", [0, 999], "dfs.window", ["999", "T = M * r = 12"]),
    ("dfs", "dfs.scale_bounds", [0.0, 2.0], "dfs.scale_bounds", ["> 0"]),
    ("dfs", "dfs.repeats", 0, "dfs.repeats", ["greater than or equal to 1"]),
    ("dfs", "dfs.init_scales", "zeros", "dfs.init_scales", ["'ones'", "'identity'"]),
    ("dfs", "dfs.min_layers_per_model", 9, "dfs.min_layers_per_model", ["exceeds"]),
    ("ps_dfs", "ps_dfs.partner", "nobody", "ps_dfs.partner", ["nobody", "lang"]),
    ("ps_dfs", "dfs.window", [0, 999], "dfs.window", ["999"]),
    # issue 20: every field, however spelled
    ("ps", "ps.x0", "NaN", "ps.x0", ["finite"]),
    ("ps", "ps.x0", {"weight": "-Infinity"}, "ps.x0.weight", ["finite"]),
    ("ps", "budget.wall_clock_s", "1e999", "budget.wall_clock_s", ["finite"]),
    ("ps", "ps.fixed", {"lambda": ".inf"}, "ps.fixed.lambda", ["finite"]),
    ("ps", "budget.max_trials", True, "budget.max_trials", ["true/false"]),
    ("ps", "budget.max_trials", "2.5", "budget.max_trials", ["whole number"]),
    ("ps", "budget.max_trials", 10**30, "budget.max_trials", ["too large"]),
    ("ps", "optimizer.seed", -1, "optimizer.seed", ["greater than or equal to 0"]),
    ("ps", "merge_seed", 2**40, "merge_seed", ["less than"]),
    ("ps", "fitness.batch_size", 0, "fitness.batch_size", ["greater than or equal to 1"]),
    ("ps", "fitness.num_fewshot", -2, "fitness.num_fewshot", ["greater than or equal to 0"]),
    ("ps", "fitness.limit", 2.5, "fitness.limit", ["whole number"]),
    ("ps", "fitness.tasks", ["a", "a"], "fitness.tasks", ["repeated"]),
    ("ps", "dtype", "bf16", "dtype", ["'bfloat16'"]),
    ("ps", "ps.recipe", {"merge_method": "linear", "dtype": "fp8"}, "ps.recipe.dtype", ["fp8"]),
    ("ps", "device", "gpu0", "device", ["cuda:N"]),
    ("ps", "storage", "redis://host/0", "storage", ["redis"]),
    ("ps", "ps.parameters", [], "ps.parameters", ["at least 1"]),
    ("ps", "ps.filters", ["mlp", "mlp"], "ps.filters", ["repeated"]),
    ("ps", "models.math", "", "models.math", ["at least 1 character"]),
    ("dfs", "dfs.models", [], "dfs.models", ["at least 1"]),
    ("dfs", "dfs.start_path", [], "dfs.start_path", ["at least 1"]),
    ("dfs", "dfs.repeats", 65, "dfs.repeats", ["less than or equal to 64"]),
    ("dfs", "dfs.indicator_bounds", [0.0, 1.0], "dfs.indicator_bounds", ["low < 0 < high"]),
    ("ps", "fitness.fidelity", {"rungs": [0.5]}, "fitness.fidelity.rungs", ["at least 2"]),
    ("ps", "fitness.fidelity", {"z": "nan"}, "fitness.fidelity.z", ["finite"]),
    ("ps", "confirm.questions", -1, "confirm.questions", ["greater than or equal to 0"]),
    ("ps", "confirm.top_k", "0", "confirm.top_k", ["greater than or equal to 1"]),
    ("ps", "start_points.sigma0", 0, "start_points.sigma0", ["greater than 0"]),
    ("ps", "ps.method", [], "ps.method", ["at least one"]),
    ("ps", "ps.method", ["ties", "ties"], "ps.method", ["repeated"]),
]


@pytest.mark.parametrize(("mode", "field", "value", "path", "words"), CASES)
def test_each_bad_field_is_named(models, tmp_path, mode, field, value, path, words):
    doc = _set(_base(models, mode), field, value)
    cfg_path = tmp_path / "c.yml"
    cfg_path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as exc:
        load_checked_config(cfg_path)
    paths = [p for p, _ in exc.value.errors]
    assert path in paths, exc.value
    msg = dict(exc.value.errors)[path]
    for w in words:
        assert w in msg, msg


def test_numbers_written_as_text_are_read_as_numbers(models):
    """YAML 1.1 reads ``1e3`` as text, JSON configs quote numbers: both are the number."""
    doc = _base(models)
    doc["budget"] = {"max_trials": "1e3", "wall_clock_s": "3600"}
    doc["fitness"]["limit"] = "0.5"
    doc["optimizer"] = {"sigma0": "1e-1", "population_size": 8.0}
    cfg = parse_search_config(doc)
    assert cfg.budget.max_trials == 1000 and cfg.budget.wall_clock_s == 3600.0
    assert cfg.fitness.limit == 0.5 and cfg.optimizer.sigma0 == 0.1
    assert cfg.optimizer.population_size == 8 and isinstance(cfg.optimizer.population_size, int)


def test_a_file_where_a_folder_is_needed(models, tmp_path):
    doc = _base(models)
    (tmp_path / "tasks.yml").write_text("task: x\n")
    doc["models"]["math"] = str(Path(models["math"]) / "config.json")
    doc["fitness"]["include_path"] = [str(tmp_path / "tasks.yml")]
    (tmp_path / "c.yml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as exc:
        load_search_config(tmp_path / "c.yml")
    errs = dict(exc.value.errors)
    assert "a file, not a model folder" in errs["models.math"]
    assert "a file, not a task folder" in errs["fitness.include_path.0"]


def test_cli_overrides_are_checked_like_the_file(models, tmp_path, monkeypatch):
    from mergekit_evo.cli import main

    _forbid_loading(monkeypatch)
    (tmp_path / "c.yml").write_text(yaml.safe_dump(_base(models)))
    run = tmp_path / "run"
    for flags, words in (
        (["--max-trials", "0"], "budget.max_trials"),
        (["--seed", "-3"], "optimizer.seed"),
        (["--device", "tpu"], "device"),
        (["--device", "cuda:999"], "torch sees"),  # no such GPU here
        (["--storage", str(tmp_path)], "is a folder"),
    ):
        res = CliRunner().invoke(
            main, ["search", str(tmp_path / "c.yml"), "--out", str(run), *flags]
        )
        assert res.exit_code == 1 and words in res.output, (flags, res.output)
        assert res.output.startswith("Error: invalid search config: "), res.output
        assert len(res.output.strip().splitlines()) == 1 and not run.exists()


def test_missing_fitness_and_several_errors_at_once(models):
    doc = _base(models)
    del doc["fitness"]
    doc["budget"] = {"max_trials": -1}
    with pytest.raises(ConfigError) as exc:
        parse_search_config(doc)
    errs = dict(exc.value.errors)
    assert errs["fitness"] == "required field is missing"
    assert "budget.max_trials" in errs


def test_valid_config_parses_with_paper_defaults(models, tmp_path):
    p = tmp_path / "ok.yml"
    p.write_text(yaml.safe_dump(_base(models)))
    cfg = load_checked_config(p)
    assert cfg.ps.method == "dare_ties"
    assert cfg.optimizer.sigma0 == pytest.approx(1 / 6)
    assert cfg.ps.x0 == 0.5
    assert cfg.dfs.repeats == 3


def test_relative_model_paths_resolve_against_the_config_folder(models, tmp_path):
    doc = _base(models)
    doc["models"] = {"math": "m"}
    (tmp_path / "m").symlink_to(models["math"])
    p = tmp_path / "rel.yml"
    p.write_text(yaml.safe_dump(doc))
    cfg = load_search_config(p)
    assert Path(cfg.models["math"]).is_absolute()


def _forbid_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    import mergekit_evo.methods as methods

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("a model was loaded or merged for a config that fails validation")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)
    monkeypatch.setattr(methods, "merge_recipe", boom)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("ps.method", "nope", "ps.method"),
        ("dfs.window", [0, 999], "dfs.window"),
        ("fitness.tasks", [{"name": "no_such_task_xyz"}], "no_such_task_xyz"),
    ],
)
def test_cli_fails_before_loading_and_leaves_no_run_dir(
    models, tmp_path, monkeypatch, field, value, needle
):
    from mergekit_evo.cli import main

    _forbid_loading(monkeypatch)
    mode = "dfs" if field.startswith("dfs") else "ps"
    doc = _set(_base(models, mode), field, value)
    cfg_path = tmp_path / "bad.yml"
    cfg_path.write_text(yaml.safe_dump(doc))
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["search", str(cfg_path), "--out", str(run)])
    assert res.exit_code != 0
    assert needle in res.output
    assert not run.exists()


def test_rerun_with_a_different_config_is_refused(models, tmp_path, monkeypatch):
    from mergekit_evo.search.run.runner import Search

    _forbid_loading(monkeypatch)
    run = tmp_path / "run"
    run.mkdir()
    doc = _base(models)
    (run / "config.yml").write_text(yaml.safe_dump(doc))
    doc2 = _set(_base(models), "ps.method", "ties")
    with pytest.raises(ConfigError) as exc:
        Search(parse_search_config(doc2), run).prepare()
    assert "ps" in dict(exc.value.errors)
    assert sorted(p.name for p in run.iterdir()) == ["config.yml"]


RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.name for p in RECIPES])
def test_example_recipes_are_valid(recipe):
    # full checks where the recipe's models are there (the real-base zoo is built on demand)
    cfg = load_search_config(recipe)
    zoo = all(Path(p).is_dir() for p in cfg.models.values())
    if zoo:
        cfg = load_checked_config(recipe)
    assert cfg.fitness.tasks
    if zoo and cfg.fitness.include_path:  # the zoo's tasks and metric keys resolve
        from mergekit_evo.search.scoring.scorer import Scorer

        Scorer(cfg.fitness, "cpu")


def test_incompatible_dfs_models_and_bad_report_task_fail_up_front(models, tmp_path, monkeypatch):
    from mergekit_evo.cli import main

    odd = tmp_path / "odd"
    make_model(odd, num_layers=2, hidden=48, seed=5)  # a different width: layers cannot chain
    _forbid_loading(monkeypatch)
    doc = _base(models, "dfs")
    doc["models"]["lang"] = str(odd)
    (tmp_path / "a.yml").write_text(yaml.safe_dump(doc))
    res = CliRunner().invoke(
        main, ["search", str(tmp_path / "a.yml"), "--out", str(tmp_path / "r")]
    )
    assert res.exit_code != 0 and "hidden_size differs: lang=48, math=32" in res.output
    doc = _set(_base(models), "report", {"tasks": ["no_such_report_task"]})
    (tmp_path / "b.yml").write_text(yaml.safe_dump(doc))
    res = CliRunner().invoke(
        main, ["search", str(tmp_path / "b.yml"), "--out", str(tmp_path / "r")]
    )
    assert res.exit_code != 0 and "no_such_report_task" in res.output
    assert not (tmp_path / "r").exists()
