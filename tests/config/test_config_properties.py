"""The config parser takes any YAML a user can write: it returns a config or raises ConfigError
with one line per field (path, message), never another exception."""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from mergekit_evo.config import ConfigError, SearchConfig, load_search_config, parse_search_config

FIELDS = [
    "mode", "models", "base_model", "ps", "dfs", "ps_dfs", "fitness", "report", "optimizer",
    "budget", "storage", "tasks", "name", "weight", "metric", "limit", "x0", "bounds",
    "method", "parameters", "repeats", "scales", "window", "scale_bounds", "max_trials",
    "population_size", "sigma0", "seed", "partner", "include_path", "batch_size", "polish_step",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["ps", "dfs", "ps_dfs", "dare_ties", "cmaes", "full", "evo_gsm8k", "1e999"]),
)
KEYS = st.one_of(st.sampled_from(FIELDS), st.text(max_size=8), st.integers(-3, 3))
TREES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=25,
)
# a valid config's sections, each possibly replaced by anything
BASE = {
    "mode": "ps",
    "models": {"a": "/nonexistent/a", "b": "/nonexistent/b"},
    "base_model": "/nonexistent/base",
    "fitness": {"tasks": ["evo_gsm8k"], "limit": 5},
}
SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(data: object) -> None:
    try:
        cfg = parse_search_config(data)  # type: ignore[arg-type]
    except ConfigError as e:
        assert e.errors
        for path, msg in e.errors:
            assert path and "\n" not in path, path
            assert msg.strip(), (path, msg)
        return
    assert isinstance(cfg, SearchConfig)


@SETTINGS
@given(TREES)
def test_any_tree_is_a_config_or_a_config_error(data: object) -> None:
    _check(data)


@SETTINGS
@given(st.dictionaries(st.sampled_from(sorted(BASE) + FIELDS[3:11]), TREES, max_size=4))
def test_a_valid_config_with_any_section_replaced(patch: dict[str, object]) -> None:
    _check({**BASE, **patch})


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=200), TREES.map(lambda t: yaml.safe_dump(t))))
def test_any_file_text_loads_or_is_a_config_error(tmp_path_factory, text: str) -> None:
    path: Path = tmp_path_factory.mktemp("cfg") / "c.yml"
    path.write_text(text, encoding="utf-8")
    try:
        load_search_config(path)
    except ConfigError as e:
        assert all("\n" not in m for _, m in e.errors), e.errors


def test_non_finite_numbers_are_refused_by_path():
    for spelling in (".nan", ".inf", "-.inf", ".NaN"):
        data = yaml.safe_load(f"mode: ps\nps: {{x0: {spelling}}}\n")
        try:
            parse_search_config({**BASE, **data})
        except ConfigError as e:
            assert [p for p, _ in e.errors] == ["ps.x0"]
            assert "not a finite number" in e.errors[0][1]
        else:
            raise AssertionError(f"{spelling} accepted")


def test_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    lines.append("models: *a8")
    path = tmp_path / "bomb.yml"
    path.write_text("\n".join(lines) + "\n")
    try:
        load_search_config(path)
    except ConfigError as e:
        assert "YAML aliases" in str(e)
    else:
        raise AssertionError("alias bomb accepted")


# -- the whole config model, through the CLI ---------------------------------------------------


def _leaves(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every field path of a config model (a nested block's fields, not the block itself), so
    a field added later is fuzzed without touching this test."""
    out: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        blocks = [
            a
            for a in typing.get_args(field.annotation) or (field.annotation,)
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        out.append(path)
        for block in blocks:
            out += _leaves(block, f"{path}.")
    return out


ALL_FIELDS = _leaves(SearchConfig)


def _field(path: str) -> typing.Any:
    """The pydantic FieldInfo at a dotted path."""
    model: typing.Any = SearchConfig
    info = None
    for key in path.split("."):
        info = model.model_fields[key]
        blocks = [
            a
            for a in typing.get_args(info.annotation) or (info.annotation,)
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        model = blocks[0] if blocks else None
    return info


def _plausible(path: str) -> st.SearchStrategy[object]:
    """Values near the field's default, in the field's own type, often spelled as text: what a
    valid config holds, to get past the field checks into the model and space checks."""
    info = _field(path)
    literals = [a for a in _flat_args(info.annotation) if isinstance(a, str)]
    default = info.get_default(call_default_factory=True)
    if literals:
        return st.sampled_from(literals)
    if isinstance(default, bool):
        return st.sampled_from([True, False, "true", "no"])
    if isinstance(default, int):
        return st.one_of(st.integers(0, 70), st.integers(0, 70).map(str))
    if isinstance(default, float):
        return st.one_of(st.floats(0.0, 2.0), st.floats(0.0, 2.0).map(repr))
    return st.nothing()


def _flat_args(annotation: typing.Any) -> list[typing.Any]:
    """Literal values anywhere in an annotation (``Literal['a', 'b'] | None``)."""
    out: list[typing.Any] = []
    for a in typing.get_args(annotation):
        out += [a] if not typing.get_args(a) else _flat_args(a)
    if typing.get_origin(annotation) is typing.Literal:
        out += list(typing.get_args(annotation))
    return out


def _nasty(files: dict[str, str]) -> st.SearchStrategy[object]:
    """Values a person (or a generator) might put in any field: numbers as strings, NaN and
    infinity in every spelling, zero, negative and huge counts, unknown dtypes, devices and
    storages, a file where a folder is needed, empty and one-item lists."""
    special = [
        "nan", "NaN", ".nan", ".inf", "-.inf", "Infinity", "-Infinity", "inf", "1e999", "1e3",
        "100", "0.5", "-1", "0", "", " ", "bf16", "float8", "int8", "cuda:99", "banana", "mps",
        "redis://x", "sqlite:///x.db", True, False, None, 0, -1, 1, 2, 3, 10**30, -(10**30), 0.0,
        -0.5, 0.5, 1.5, 1e-300, float("nan"), float("inf"), float("-inf"), [], [None], ["x"],
        [0.25, 1.0], [0.5, 0.25, 1.0], [-1.0, 1.0], [0, 0], [1, 3], {}, {"weight": 1.5},
        {"weight": [0.0, 1.0]}, ["lang", 0], [["lang", 0], ["math", 1]], ["dare_ties", "ties"],
        "dare_ties", "task_arithmetic", "ps", "dfs", "ps_dfs", "math", "lang", "compact",
        "model_a", "float16", "bfloat16", "cuda", "disk", "memory", "weighted", "per_task",
        *files.values(),
    ]  # fmt: skip
    return st.one_of(
        st.sampled_from(special),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.lists(st.sampled_from(special[:40]), max_size=3),
    )


def _set_path(doc: dict, dotted: str, value: object) -> None:
    cur = doc
    keys = dotted.split(".")
    for k in keys[:-1]:
        nxt = cur.get(k)
        if not isinstance(nxt, dict):
            nxt = cur[k] = {}
        cur = nxt
    cur[keys[-1]] = value


@pytest.fixture(scope="module")
def fuzz_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from tests.search.family import make_family

    root = tmp_path_factory.mktemp("fuzz")
    fam = {k: str(v) for k, v in make_family(root / "fam").items()}
    (root / "a_file.txt").write_text("not a model\n")
    (root / "a_folder").mkdir()
    return {**fam, "file": str(root / "a_file.txt"), "folder": str(root / "a_folder")}


def _valid(home: dict[str, str]) -> dict:
    """A config that runs: PS over the tiny family, a Python fitness (no lm-eval)."""
    return {
        "mode": "ps",
        "models": {"math": home["math"], "lang": home["lang"]},
        "base_model": home["base"],
        "fitness": {"function": "tests.search.fitness_fns:mean_logit_norm", "tasks": []},
        "dfs": {"repeats": 2, "scales": "compact"},
        "budget": {"max_trials": 4},
        "baselines": False,
    }


#: examples per run; a deeper search: MERGEKIT_EVO_FUZZ_EXAMPLES=2000 (about 3 minutes here)
FUZZ_EXAMPLES = int(os.environ.get("MERGEKIT_EVO_FUZZ_EXAMPLES", "80"))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_config_loads_or_fails_in_one_line(fuzz_home, tmp_path_factory, data) -> None:
    """Whatever a field holds, ``mergekit-evo search`` either gets past every check that runs
    before the search (the config, the model folders, the spaces, the fitness) or stops in one
    line with exit code 1: no traceback, and no run folder either way."""
    from unittest import mock

    import click
    from click.testing import CliRunner

    from mergekit_evo.cli import main
    from mergekit_evo.search.run import runner

    doc = _valid(fuzz_home)
    paths = data.draw(st.lists(st.sampled_from(ALL_FIELDS), min_size=1, max_size=3, unique=True))
    for path in paths:
        value = st.one_of(_plausible(path), _nasty(fuzz_home))
        _set_path(doc, path, data.draw(value, label=path))
    as_json = data.draw(st.booleans(), label="json")
    folder = tmp_path_factory.mktemp("case")
    cfg = folder / ("c.json" if as_json else "c.yml")
    cfg.write_text(json.dumps(doc) if as_json else yaml.safe_dump(doc), encoding="utf-8")
    run = folder / "run"

    def prepare_only(cfg: SearchConfig, out: object, **kwargs: object) -> None:
        runner.Search(cfg, out, log=lambda s: None).prepare()  # type: ignore[arg-type]
        raise click.exceptions.Exit(0)  # every check passed: a search would start here

    with mock.patch.object(runner, "run_search", prepare_only):
        res = CliRunner().invoke(main, ["search", str(cfg), "--out", str(run), "-q"])
    assert not run.exists(), "a run folder was left behind"
    assert "Traceback" not in res.output and "unexpectedly" not in res.output, res.output
    event("loads" if res.exit_code == 0 else "one-line error")
    if res.exit_code == 0:
        return
    assert res.exit_code == 1, (res.exit_code, res.output)
    lines = res.output.strip().splitlines()
    assert lines[0].startswith("Error: "), res.output
    if len(lines) > 1:  # several problems: one line each, under one heading
        assert lines[0].endswith("invalid search config:"), res.output
        assert all(ln.startswith("  ") for ln in lines[1:]), res.output
