"""In-memory candidates equal MergeKit's on-disk merges (PS) and materialised DFS models (CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mergekit_evo.candidate.disk import DiskCandidateBuilder
from mergekit_evo.candidate.resident import ResidentCandidateBuilder
from tests.tiny_models import make_model


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, str]:
    return build_sources(tmp_path_factory.mktemp("resident"))


def build_sources(root: Path) -> dict[str, str]:
    """A tiny Qwen2 base and two fine-tunes of it (base + small deltas), float32."""
    out = {}
    for i, name in enumerate(("base", "a", "b")):
        make_model(root / name, arch="qwen2", num_layers=4, seed=i, rms_norm_eps=1e-12)
        out[name] = str(root / name)
    with torch.no_grad():  # fine-tunes: base + a small delta, so sign consensus has work to do
        import transformers

        base = transformers.AutoModelForCausalLM.from_pretrained(out["base"])
        for i, name in enumerate(("a", "b")):
            m = transformers.AutoModelForCausalLM.from_pretrained(out[name])
            g = torch.Generator().manual_seed(10 + i)
            for (_, p), (_, q) in zip(m.named_parameters(), base.named_parameters(), strict=True):
                p.copy_(q + 0.05 * torch.randn(p.shape, generator=g))
            m.save_pretrained(out[name])
    return out


def _ps(method: str, s: dict[str, str], **params) -> dict:
    w = {
        "a": [0.3, 0.9, 1.2, 0.5],
        "b": [{"filter": "self_attn", "value": 0.7}, {"value": [1.1, 0.2]}],
    }
    models = [
        {"model": s[n], "parameters": {"weight": w[n], **({"density": 0.6} if "ties" in method or
                                                       "breadcrumbs" in method else {})}}
        for n in ("a", "b")
    ]  # fmt: skip
    return {
        "merge_method": method,
        "base_model": s["base"],
        "models": models,
        "parameters": params or None,
        "dtype": "float32",
    }


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    ("method", "params", "dtype"),
    [
        ("linear", {"normalize": True}, "float32"),
        ("linear", {"normalize": False}, "bfloat16"),
        ("task_arithmetic", {"lambda": 0.8}, "float32"),
        ("ties", {"normalize": False}, "float32"),
        ("ties", {"rescale": True}, "bfloat16"),
        ("breadcrumbs", {"lambda": 1.2}, "float32"),
        ("breadcrumbs_ties", {}, "bfloat16"),
    ],
)
@pytest.mark.parametrize("batched", [True, False])
def test_ps_in_place_equals_mergekit_on_disk(
    sources, tmp_path: Path, method, params, dtype, batched
) -> None:
    recipe = _ps(method, sources, **params)
    recipe["dtype"] = dtype
    if method == "linear":
        recipe.pop("base_model")
    disk = DiskCandidateBuilder(dtype="float32").build(recipe, tmp_path)
    res = ResidentCandidateBuilder(device="cpu", dtype="float32", batched=batched)
    ours = res.build(recipe, tmp_path)
    assert res.last_merge_path == ("batched" if batched else "tasks")
    want, got = _state(disk.model), _state(ours.model)
    assert want.keys() == got.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=k)
    assert res.exact_for(recipe)


def test_candidates_of_one_shape_share_a_plan_and_stay_exact(sources, tmp_path: Path) -> None:
    """The second candidate's parameters come from the recorded calls, not a new plan."""
    res = ResidentCandidateBuilder(device="cpu", dtype="float32")
    first = _ps("ties", sources)
    res.build(first, tmp_path)
    second = _ps("ties", sources)
    second["models"][0]["parameters"]["weight"] = [1.1, 0.2, 0.4, 0.9]
    second["models"][1]["parameters"]["density"] = 0.3
    second["models"][0]["parameters"]["density"] = 1.0
    second["models"][1]["parameters"]["weight"][0]["value"] = -0.4
    got = _state(res.build(second, tmp_path).model)
    plans = list(res._batcher._plans.values())
    assert len(plans) == 1 and plans[0].calls is not None  # one shape, resolved without planning
    want = _state(DiskCandidateBuilder(dtype="float32").build(second, tmp_path).model)
    assert res.last_merge_path == "batched" and res._batcher.last_rows == len(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=k)


def test_second_candidate_overwrites_every_tensor(sources, tmp_path: Path) -> None:
    res = ResidentCandidateBuilder(device="cpu", dtype="float32")
    first = res.build(_ps("ties", sources), tmp_path).model
    r2 = _ps("task_arithmetic", sources)
    second = res.build(r2, tmp_path).model
    assert first is second  # one working model, written in place
    want = _state(DiskCandidateBuilder(dtype="float32").build(r2, tmp_path).model)
    for k, v in _state(second).items():
        torch.testing.assert_close(v, want[k], rtol=0, atol=0, msg=k)


def test_adopted_models_are_the_sources_and_merge_like_loaded_ones(sources, tmp_path) -> None:
    import transformers

    loaded = {n: transformers.AutoModelForCausalLM.from_pretrained(sources[n]) for n in "ab"}
    res = ResidentCandidateBuilder(device="cpu", dtype="float32")
    assert all(res.adopt(sources[n], loaded[n]) for n in "ab")
    assert res.load(sources["a"]).model is loaded["a"]  # baselines score the object itself
    r = _ps("task_arithmetic", sources)
    got = _state(res.build(r, tmp_path).model)
    want = _state(ResidentCandidateBuilder(device="cpu", dtype="float32").build(r, tmp_path).model)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=k)
    # another dtype would not be what this builder merges in: loaded from the folder instead
    half = ResidentCandidateBuilder(device="cpu", dtype="bfloat16")
    assert not half.adopt(sources["a"], loaded["a"])
    assert half.load(sources["a"]).model is not loaded["a"]


def test_dare_is_seeded_but_flagged_inexact(sources, tmp_path: Path) -> None:
    res = ResidentCandidateBuilder(device="cpu", dtype="float32")
    r = _ps("dare_ties", sources)
    for m in r["models"]:
        m["parameters"]["density"] = 0.5
    a = _state(res.build(r, tmp_path).model)
    b = _state(res.build(r, tmp_path).model)
    assert all(torch.equal(a[k], b[k]) for k in a)  # same recipe, same masks
    assert not res.exact_for(r)


@pytest.mark.parametrize("head", [0, 1])
def test_dfs_route_equals_materialised_dfs(sources, tmp_path: Path, head: int) -> None:
    """The route over resident layers is the model MergeKit writes, with model A's or (with
    ``head_model: 1``) model B's final norm and lm_head."""
    from mergekit_evo.engine import GreedyDecoder

    T = 8 * 2
    ind = [-1.0] * T
    for k in (0, 5, 6, 9, 3 + 8 + 8 - 8):  # A0, B1, B2, A1 (2nd repeat), A3
        ind[k] = 1.0
    recipe = {
        "merge_method": "dfs",
        "models": [{"model": sources["a"]}, {"model": sources["b"]}],
        "parameters": {"repeats": 2, "indicators": ind, "scales": [[1.0, 0.8], [1.2, 1.0]]},
        "dtype": "float32",
    }
    if head:
        recipe["parameters"]["head_model"] = head
    disk = DiskCandidateBuilder(dtype="float32").build(recipe, tmp_path).model
    res = ResidentCandidateBuilder(device="cpu", dtype="float32")
    routed = res.build(recipe, tmp_path).model
    ids = torch.randint(1, 150, (2, 12))
    with torch.no_grad():
        want = disk(ids).logits
    got = routed(ids).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    n_disk = disk.config.num_hidden_layers
    assert len(routed.stack.layers) == n_disk
    assert GreedyDecoder(routed.stack, max_batch=2).generate([[5, 6, 7]], 4, lambda r, t: False)


def test_search_in_memory_rescores_a_dare_champion_as_mergekit_rebuilds_it(
    sources, tmp_path: Path
) -> None:
    """``candidates: memory`` on CPU: a DARE search reports the rebuilt champion's fitness too."""
    import json

    from mergekit_evo.config import parse_search_config
    from mergekit_evo.search.run.runner import run_search

    zoo = Path(__file__).resolve().parents[2] / "fixtures" / "zoo"
    cfg = parse_search_config(
        {
            "mode": "ps",
            "models": {"math": str(zoo / "math"), "verbs": str(zoo / "verbs")},
            "base_model": str(zoo / "base"),
            "ps": {"method": "dare_ties", "parameters": ["weight", "density"],
                   "bounds": {"weight": [0, 2], "density": [0.2, 1]},
                   "x0": {"weight": 1.0, "density": 0.8}},
            "fitness": {"tasks": [{"name": "zoo_target_search",
                                   "metric": "exact_match,flexible-extract"}],
                        "include_path": [str(zoo / "tasks")], "limit": 12, "num_fewshot": 0,
                        "max_gen_toks": 16},
            "candidates": "memory",
            "baselines": False,
            "budget": {"max_trials": 2},
        }
    )  # fmt: skip
    res = run_search(cfg, tmp_path / "run", log=lambda m: None)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["champion_rebuilt_fitness"] <= 1.0
    assert res.metrics["champion_fitness"] is not None


def test_ranks_not_cached_when_they_do_not_fit_are_sorted_each_time(
    sources, tmp_path: Path
) -> None:
    """The rank cache's fallback (the guard said no): every candidate sorts its task vectors
    again, and the merges stay MergeKit's bits."""
    res = ResidentCandidateBuilder(device="cpu", dtype="float32")
    res._batcher.rank_cache_bytes = 0
    for density in (0.6, 0.3):
        recipe = _ps("ties", sources)
        recipe["models"][1]["parameters"]["density"] = density
        got = _state(res.build(recipe, tmp_path).model)
        want = _state(DiskCandidateBuilder(dtype="float32").build(recipe, tmp_path).model)
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=k)
    (plan,) = res._batcher._plans.values()
    assert res.last_merge_path == "batched" and not plan.cache_ranks
    assert all(not g.ranks for g in plan.groups)
    assert res._batcher.last_rank_cache["cached"] is False
    assert res._batcher.last_rank_cache["need"] > 0
