"""PS and DFS genomes: vector <-> recipe mapping, paper initialisation, repairs, and that the
recipes they emit are accepted (and merged) by MergeKit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_models import make_model

from mergekit_evo.config import ConfigError, parse_search_config, resolve_paths
from mergekit_evo.space.dfs import DFSSpace
from mergekit_evo.space.ps import PSSpace
from mergekit_evo.space.ps_dfs import PSDFSSpace
from mergekit_evo.space.vector import Dim, VectorSpace, default_population_size


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("spacezoo")
    out = {}
    for i, (name, layers) in enumerate((("base", 4), ("math", 4), ("lang", 4), ("small", 2))):
        make_model(root / name, num_layers=layers, seed=i)
        out[name] = str(root / name)
    return out


def _cfg(zoo: dict[str, str], **kw: object):
    doc = {
        "models": {"math": zoo["math"], "lang": zoo["lang"]},
        "base_model": zoo["base"],
        "fitness": {"tasks": ["t"]},
        **kw,
    }
    return resolve_paths(parse_search_config(doc))


def test_vector_space_reparametrises_x0_and_sigma_without_deprecated_args():
    v = VectorSpace([Dim("a", 0.0, 1.0, 0.5), Dim("b", -1.0, 1.0, 0.2)], sigma0=1 / 6)
    d = v.distributions()
    # CmaEsSampler starts at the range centre with sigma = range / 6: centre = x0
    assert (d["a"].low, d["a"].high) == pytest.approx((0.0, 1.0))
    assert (d["b"].low + d["b"].high) / 2 == pytest.approx(0.2)
    assert (d["b"].high - d["b"].low) / 6 == pytest.approx(1 / 6 * 2)
    assert v.decode({"a": 1.7, "b": -3.0}).tolist() == [1.0, -1.0]  # clipped into bounds
    assert default_population_size(6) == 4 + 5


def test_ps_paper_defaults(zoo):
    space = PSSpace.from_config(_cfg(zoo))
    assert [d.name for d in space.vector.dims] == [
        "math.weight",
        "math.density",
        "lang.weight",
        "lang.density",
    ]
    assert all(d.x0 == 0.5 for d in space.vector.dims)
    r = space.recipe(np.array([0.1, 0.2, 0.3, 0.4]))
    assert r["merge_method"] == "dare_ties" and r["base_model"] == zoo["base"]
    assert r["models"][0]["parameters"] == {"weight": 0.1, "density": 0.2}
    assert r["models"][1] == {"model": zoo["lang"], "parameters": {"weight": 0.3, "density": 0.4}}


def test_ps_layer_groups_filters_and_normalisation(zoo):
    cfg = _cfg(
        zoo,
        ps={
            "method": "ties",
            "granularity": "layers",
            "layer_group_size": 2,
            "filters": ["self_attn", "mlp"],
            "normalize_weights": True,
            "bounds": {"weight": [0.0, 2.0]},
            "x0": {"weight": 1.0},
        },
    )
    space = PSSpace.from_config(cfg)
    # 2 models x 2 params x 2 layer groups x 3 sets (self_attn, mlp, rest)
    assert len(space.vector) == 24
    w = [d for d in space.vector.dims if ".weight@" in d.name and "[self_attn]" in d.name]
    assert w and all(d.x0 == 1.0 and d.high == 2.0 for d in w)
    x = np.linspace(0.1, 0.9, 24)
    r = space.recipe(x)
    wm = r["models"][0]["parameters"]["weight"]
    assert [c.get("filter") for c in wm] == ["self_attn", "mlp", None]
    assert len(wm[0]["value"]) == 4  # one value per layer (2 groups x 2 layers)
    assert wm[0]["value"][0] == wm[0]["value"][1]
    # weights of the two models sum to 1 per layer group and filter
    wl = r["models"][1]["parameters"]["weight"]
    for k in range(3):
        for layer in range(4):
            assert wm[k]["value"][layer] + wl[k]["value"][layer] == pytest.approx(1.0)


def test_ps_recipes_of_several_methods_merge(zoo, tmp_path):
    from mergekit_evo.methods import merge_recipe

    for method, extra in (
        ("linear", {}),
        ("task_arithmetic", {"global_parameters": ["lambda"]}),
        ("della", {"filters": ["mlp"]}),
    ):
        space = PSSpace.from_config(_cfg(zoo, ps={"method": method, **extra}))
        recipe = space.recipe(space.vector.x0())
        out = merge_recipe(recipe, tmp_path / method)
        assert any(Path(out).glob("*.safetensors"))
    slerp = PSSpace.from_config(
        resolve_paths(
            parse_search_config(
                {
                    "models": {"math": zoo["math"]},
                    "base_model": zoo["base"],
                    "fitness": {"tasks": ["t"]},
                    "ps": {"method": "slerp"},
                }
            )
        )
    )
    assert [d.name for d in slerp.vector.dims] == ["t"]
    out = merge_recipe(slerp.recipe(np.array([0.3])), tmp_path / "slerp")
    assert any(Path(out).glob("*.safetensors"))


def test_dfs_paper_init_is_model_a(zoo):
    cfg = _cfg(zoo, mode="dfs", dfs={"repeats": 3})
    space = DFSSpace.from_config(cfg)
    assert space.M == 8 and space.T == 24
    i, w = space.split(space.vector.x0())
    assert (i[:4] > 0).all() and (i[4:] <= 0).all()  # A's first repetition only
    two_sigma = 2 * (1 / 6) * 2  # indicator bounds [-1, 1]
    # default model_a: the other slots clearly off (-2 sigma), not at the threshold 0
    assert i[0] == pytest.approx(two_sigma) and i[4:] == pytest.approx(-two_sigma)
    lo, hi = space.vector.box()  # a trial can still switch an off slot on (up to +1 sigma)
    assert hi[4] == pytest.approx(two_sigma / 2) and lo[4] == -1.0
    paper = DFSSpace.from_config(
        _cfg(zoo, mode="dfs", dfs={"repeats": 3, "init_indicators": "paper"})
    )
    i_paper, _ = paper.split(paper.vector.x0())
    assert i_paper[:4] == pytest.approx(two_sigma) and (i_paper[4:] == 0).all()
    assert w.shape == (8, 8) and (w == 1).all()
    assert len(space.vector) == 24 + 64
    r = space.recipe(space.vector.x0())
    assert r["merge_method"] == "dfs" and len(r["parameters"]["indicators"]) == 24


def test_dfs_shrinking_options(zoo):
    cfg = _cfg(
        zoo,
        mode="dfs",
        dfs={
            "repeats": 2,
            "window": [4, 12],
            "scales": "shared",
            "init_scales": "identity",
            "min_layers_per_model": 2,
        },
    )
    space = DFSSpace.from_config(cfg)
    assert len(space.vector) == 8 + 1
    x = np.full(9, -0.5)
    x[-1] = 0.7
    i, w = space.split(x)
    kept_b = sum(1 for t in range(16) if i[t] > 0 and space.owner[t % 8] == 1)
    assert kept_b == 2  # repaired up to min_layers_per_model
    m = space.scales_matrix(w)
    assert m == [[1.0, 0.7], [0.7, 1.0]]
    only_w = DFSSpace.from_config(_cfg(zoo, mode="dfs", dfs={"evolve": "scales"}))
    assert all(d.name.startswith("W.") for d in only_w.vector.dims)
    only_i = DFSSpace.from_config(_cfg(zoo, mode="dfs", dfs={"evolve": "indicators"}))
    assert all(d.name.startswith("I.") for d in only_i.vector.dims)


@pytest.mark.parametrize("init", ["all", "uniform", "random"])
def test_dfs_alternative_inits_are_seeded(zoo, init):
    cfg = _cfg(zoo, mode="dfs", dfs={"init_indicators": init, "init_scales": "random"})
    a = DFSSpace.from_config(cfg).vector.x0()
    b = DFSSpace.from_config(cfg).vector.x0()
    assert np.array_equal(a, b)
    if init == "all":
        assert (a[: 8 * 3] > 0).all()


def test_ps_dfs_recipe_merges(zoo, tmp_path):
    from mergekit_evo.methods import merge_recipe

    cfg = _cfg(zoo, mode="ps_dfs", dfs={"repeats": 1, "scales": "compact"})
    ps = PSSpace.from_config(cfg)
    champ = ps.recipe(ps.vector.x0())
    space = PSDFSSpace(cfg, [champ], zoo["small"])
    x = space.vector.x0()
    x[4 + 1] = 0.5  # also route through the partner's second layer
    r = space.recipe(x)
    assert r["merge_method"] == "ps_dfs"
    assert r["parameters"]["dfs_models"] == ["ps", zoo["small"]]
    assert len(r["parameters"]["indicators"]) == 4 + 2
    out = merge_recipe(r, tmp_path / "psdfs")
    import json

    # A0..A3, B1, then pin_ends appends A's last layer again: 6 layers
    assert json.loads((Path(out) / "config.json").read_text())["num_hidden_layers"] == 6
    topk = PSDFSSpace(cfg, [champ, ps.recipe(ps.vector.x0() * 0.5)], None)
    r2 = topk.recipe(topk.vector.x0())
    assert set(r2["modules"]) == {"ps", "ps2"} and r2["parameters"]["dfs_models"] == ["ps", "ps2"]
    out2 = merge_recipe(r2, tmp_path / "topk")
    assert any(Path(out2).glob("*.safetensors"))


def test_dfs_head_model_and_tokenizer_source_reach_the_recipe(zoo):
    """``dfs.head_model`` (a name of the DFS models) becomes the recipe's index; model A's (the
    default) is left out, so recipes without it stay as they were."""
    plain = DFSSpace.from_config(_cfg(zoo, mode="dfs"))
    r = plain.recipe(plain.vector.x0())
    assert "head_model" not in r["parameters"] and "tokenizer_source" not in r
    space = DFSSpace.from_config(
        _cfg(zoo, mode="dfs", dfs={"head_model": "lang", "tokenizer_source": "lang"})
    )
    r = space.recipe(space.vector.x0())
    assert r["parameters"]["head_model"] == 1 and r["tokenizer_source"] == zoo["lang"]
    with pytest.raises(ConfigError, match="dfs.head_model"):
        _cfg(zoo, mode="dfs", dfs={"head_model": "base"})  # a source, not a DFS model
    cfg = _cfg(zoo, mode="ps_dfs", ps_dfs={"partner": "lang"}, dfs={"head_model": "lang"})
    ps = PSSpace.from_config(cfg)
    both = PSDFSSpace(cfg, [ps.recipe(ps.vector.x0())], cfg.model_path("lang"))
    assert both.recipe(both.vector.x0())["parameters"]["head_model"] == 1
    with pytest.raises(ConfigError, match="dfs.head_model"):
        _cfg(zoo, mode="ps_dfs", dfs={"head_model": "math"})  # the PS stage's source
