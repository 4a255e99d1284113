"""Standard start points: which merges each space can express, exactly or not (and why), and
that an exact one's recipe merges to the same tensors as the recipe a person would write."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.torch import load_file

from mergekit_evo.space.dfs import DFSSpace
from mergekit_evo.space.ps import PSSpace
from mergekit_evo.space.ps_dfs import PSDFSSpace
from mergekit_evo.space.starts import start_points

from .test_genomes import _cfg, zoo  # noqa: F401  (the module's tiny models)


def _labels(points) -> dict[str, object]:
    return {p.label: p for p in points}


def _tensors(path) -> dict:
    out = {}
    for f in sorted(path.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def test_ps_dare_ties_points_and_notes(zoo):  # noqa: F811
    space = PSSpace.from_config(
        _cfg(zoo, ps={"method": "dare_ties", "bounds": {"weight": [0, 2]}, "x0": {"weight": 1}})
    )
    pts = _labels(start_points(space))
    assert list(pts)[0] == "x0"  # the configured start stays trial 0
    assert {"source:math", "source:lang", "task_arithmetic"} <= set(pts)
    math_alone = space.describe(pts["source:math"].x)
    assert math_alone["math.weight"] == 1 and math_alone["lang.weight"] == 0
    assert math_alone["math.density"] == 1  # MergeKit's default: no pruning
    assert pts["source:math"].exact
    ta = pts["task_arithmetic"]
    assert not ta.exact and "not a plain sum" in ta.note
    assert ta.hand["merge_method"] == "task_arithmetic"
    # dare_ties at MergeKit's defaults is the same point as the plain-sum attempt: one trial
    assert "dare_ties:defaults" not in pts
    assert "dare_ties:defaults" in _labels(start_points(space, dedupe=False))


def test_ps_bounds_that_exclude_a_point_say_so(zoo):  # noqa: F811
    space = PSSpace.from_config(_cfg(zoo, ps={"method": "task_arithmetic"}))  # weights 0..1
    ta = _labels(start_points(space))["task_arithmetic"]
    assert ta.exact  # weight 1 is inside [0, 1], density has no say in task_arithmetic
    narrow = PSSpace.from_config(
        _cfg(zoo, ps={"method": "task_arithmetic", "bounds": {"weight": [0.2, 0.8]}})
    )
    ta = _labels(start_points(narrow))["task_arithmetic"]
    assert not ta.exact and "outside the search range: math.weight=1" in ta.note
    assert space.describe(ta.x)["math.weight"] == pytest.approx(0.8)  # the nearest point


def test_exact_ps_start_points_merge_like_the_hand_recipe(zoo, tmp_path):  # noqa: F811
    from mergekit_evo.methods import merge_recipe

    space = PSSpace.from_config(
        _cfg(zoo, ps={"method": "task_arithmetic", "bounds": {"weight": [0, 2]}})
    )
    for p in start_points(space):
        if p.label == "x0" or not p.exact:
            continue
        x = space.vector.decode(p.params(space))  # what a trial enqueued with them decodes to
        ours = merge_recipe(space.recipe(x), tmp_path / f"ours-{p.label}")
        hand = merge_recipe(p.hand, tmp_path / f"hand-{p.label}")
        a, b = _tensors(ours), _tensors(hand)
        assert a.keys() == b.keys()
        for k in a:
            assert np.allclose(a[k].float().numpy(), b[k].float().numpy(), atol=1e-6), (p.label, k)


def test_dfs_points_own_paths_and_halves(zoo):  # noqa: F811
    space = DFSSpace.from_config(_cfg(zoo, mode="dfs", dfs={"repeats": 2, "pin_ends": False}))
    pts = _labels(start_points(space))
    assert list(pts) == ["own:math", "own:lang", "half:math+lang", "half:lang+math"]
    assert all(p.exact for p in pts.values())
    assert space.layer_path(pts["own:lang"].x) == [(1, k) for k in range(4)]
    assert space.layer_path(pts["half:lang+math"].x) == [(1, 0), (1, 1), (0, 2), (0, 3)]
    assert pts["half:math+lang"].hand["merge_method"] == "dfs"


def test_dfs_points_pin_ends_and_repeats(zoo):  # noqa: F811
    space = DFSSpace.from_config(_cfg(zoo, mode="dfs", dfs={"repeats": 1}))  # pin_ends on
    pts = _labels(start_points(space))
    assert pts["own:math"].exact
    assert not pts["own:lang"].exact and "pin_ends" in pts["own:lang"].note
    assert space.layer_path(pts["own:lang"].x)[0] == (0, 0)  # A's first layer kept
    back = pts["half:lang+math"]  # A's second half after B needs a second repetition
    assert back.x is None and "too few" in back.note


def test_ps_dfs_stage_starts_from_the_ps_champion(zoo):  # noqa: F811
    cfg = _cfg(zoo, mode="ps_dfs", dfs={"repeats": 2, "pin_ends": False})
    ps = PSSpace.from_config(cfg)
    space = PSDFSSpace(cfg, [ps.recipe(ps.vector.x0())], cfg.model_path("lang"))
    pts = start_points(space)
    assert pts[0].label == "own:ps"  # trial 0: the PS champion's own path
    assert pts[0].hand["merge_method"] == "ps_dfs"
    assert {p.label for p in pts} >= {"own:lang", "half:ps+lang", "half:lang+ps"}
