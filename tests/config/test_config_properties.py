"""The config parser takes any YAML a user can write: it returns a config or raises ConfigError
with one line per field (path, message), never another exception."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
