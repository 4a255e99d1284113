"""Bad dfs / ps_dfs recipes fail with an error naming field, value and what is valid,
before any weights load, and leave nothing behind."""

from __future__ import annotations

import pytest
from tiny_models import make_model

from mergekit_evo.methods import RecipeError, merge_recipe


def _dfs(a, b, **params):
    base = {"repeats": 1, "indicators": [1, 1, 1, 1, 1]}
    base.update(params)
    return {
        "merge_method": "dfs",
        "models": [{"model": str(a)}, {"model": str(b)}],
        "parameters": base,
        "dtype": "float32",
    }


@pytest.mark.parametrize(
    "params,field,says",
    [
        ({"indicators": [0, -1, 0, -0.5, 0]}, "parameters.indicators", "path is empty"),
        ({"indicators": [1, 1, 1]}, "parameters.indicators", "T = M * r = 5 * 1 = 5"),
        ({"repeats": 2}, "parameters.indicators", "T = M * r = 5 * 2 = 10"),
        ({"scales": [[1, 1, 1], [1, 1, 1]]}, "parameters.scales", "5 x 5"),
        ({"scales": [[1, 0], [1, 1]]}, "parameters.scales[0][1]", "> 0"),
        ({"scales": [[1, -2], [1, 1]]}, "parameters.scales[0][1]", "> 0"),
        ({"repeats": 0}, "parameters.repeats", "greater than or equal to 1"),
        ({"indicatorz": [1]}, "parameters.indicatorz", "repeats"),
    ],
)
def test_bad_dfs_parameters(tiny_pair, tmp_path, params, field, says):
    a, b = tiny_pair("llama")
    with pytest.raises(RecipeError) as info:
        merge_recipe(_dfs(a, b, **params), tmp_path / "out")
    assert info.value.field == field
    assert says in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_models_with_different_hidden_sizes(tiny_pair, tmp_path):
    a, _ = tiny_pair("llama")
    wide = tmp_path / "wide"
    make_model(wide, num_layers=2, hidden=64, tokenizer=False)
    with pytest.raises(RecipeError, match=r"models\[1\]\.hidden_size: got 64; expected 32"):
        merge_recipe(_dfs(a, wide), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unsupported_architecture_is_named(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for path in (a, b):
        make_model(path, arch="gemma2", num_layers=2, tokenizer=False, head_dim=8)
    recipe = _dfs(a, b, indicators=[1, 1, 1, 1])
    with pytest.raises(RecipeError, match=r"models\[0\]\.model_type: got 'gemma2'.*post-sublayer"):
        merge_recipe(recipe, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_model_folder_is_named(tiny_pair, tmp_path):
    a, _ = tiny_pair("llama")
    with pytest.raises(RecipeError, match=r"models\[1\]\.model"):
        merge_recipe(_dfs(a, tmp_path / "nope"), tmp_path / "out")


def test_dfs_needs_models_form(tiny_pair, tmp_path):
    a, _ = tiny_pair("llama")
    recipe = {
        "merge_method": "dfs",
        "slices": [{"sources": [{"model": str(a), "layer_range": [0, 3]}]}],
        "parameters": {"indicators": [1, 1, 1]},
    }
    with pytest.raises(RecipeError, match="a 'models:' list"):
        merge_recipe(recipe, tmp_path / "out")


def test_ps_dfs_bad_method_and_models(tiny_pair, tmp_path):
    a, b = tiny_pair("llama")
    recipe = {
        "merge_method": "ps_dfs",
        "base_model": str(a),
        "models": [{"model": str(b), "parameters": {"weight": 1.0}}],
        "parameters": {"ps_method": "nope", "dfs_models": ["ps", str(b)], "indicators": [1] * 5},
    }
    with pytest.raises(RecipeError, match=r"parameters.ps_method: got 'nope'.*task_arithmetic"):
        merge_recipe(recipe, tmp_path / "out")
    recipe["parameters"].update(ps_method="task_arithmetic", dfs_models=[str(a), str(b)])
    with pytest.raises(RecipeError, match=r"parameters.dfs_models.*at least one PS stage"):
        merge_recipe(recipe, tmp_path / "out")
    recipe["parameters"].update(dfs_models=["ps", str(b)], indicators=[1, 1])
    with pytest.raises(RecipeError, match="T = M \\* r"):
        merge_recipe(recipe, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
