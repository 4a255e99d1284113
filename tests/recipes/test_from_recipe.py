"""``--from-recipe``: a community MergeKit recipe as the search's start, trial 0 = the recipe.

The recipes under examples/community are written in the shapes published with hub merges
(models: and slices: forms, gradients, tensor filters, top-level parameters) and point at the
committed zoo, so each one is merged for real, by ``mergekit-yaml`` itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mergekit_evo.cli import main
from mergekit_evo.config import ConfigError
from mergekit_evo.recipe_import import search_config_from_recipe
from mergekit_evo.space.ps import PSSpace
from mergekit_evo.space.template import RecipeSpace

ROOT = Path(__file__).resolve().parents[2]
COMMUNITY = ROOT / "examples" / "community"
RECIPES = sorted(p.name for p in COMMUNITY.glob("*.yml") if not p.name.startswith("passthrough"))
ZOO_TASK = ["zoo_target_search"]
METHODS = {
    "linear", "task_arithmetic", "ties", "dare_ties", "dare_linear", "della", "breadcrumbs",
    "slerp",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the recipes' paths are relative to the repository, as MergeKit's


def mergekit_yaml(recipe: Path, out: Path) -> dict[str, object]:
    """Run MergeKit's own ``mergekit-yaml`` command; return the written tensors."""
    from mergekit.scripts.run_yaml import main as mergekit_yaml_main
    from safetensors.torch import load_file

    r = CliRunner().invoke(
        mergekit_yaml_main, [str(recipe), str(out), "--random-seed", "0", "--quiet"]
    )
    assert r.exit_code == 0, r.output + repr(r.exception)
    tensors: dict[str, object] = {}
    for f in sorted(out.glob("*.safetensors")):
        tensors.update(load_file(f))
    assert tensors
    return tensors


def trial0_recipe(name: str) -> tuple[dict, RecipeSpace]:
    _, cfg = search_config_from_recipe(COMMUNITY / name, tasks=ZOO_TASK)
    space = PSSpace.from_config(cfg)
    assert isinstance(space, RecipeSpace)
    vec = space.vector
    # exactly what the search's first trial does: the enqueued start point, decoded
    return space.recipe(vec.decode(vec.start_params())), space


def test_the_recipes_cover_every_method():
    methods = {yaml.safe_load((COMMUNITY / n).read_text())["merge_method"] for n in RECIPES}
    assert METHODS <= methods
    assert len(RECIPES) >= 12


@pytest.mark.parametrize("name", RECIPES)
def test_trial0_merges_to_the_recipe_tensor_for_tensor(name: str, tmp_path: Path):
    import torch

    recipe, space = trial0_recipe(name)
    assert len(space.vector) >= 1
    given = yaml.safe_load((COMMUNITY / name).read_text())
    assert recipe["merge_method"] == given["merge_method"]
    for key in ("tokenizer_source", "dtype"):
        assert recipe.get(key) == given.get(key)
    (tmp_path / "trial0.yml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    want = mergekit_yaml(COMMUNITY / name, tmp_path / "want")
    got = mergekit_yaml(tmp_path / "trial0.yml", tmp_path / "got")
    assert sorted(got) == sorted(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_other_vectors_change_the_merge(tmp_path: Path):
    """The coordinates are live: moving one changes the recipe where the recipe had it."""
    recipe, space = trial0_recipe("ties_filters.yml")
    names = space.vector.names
    assert "math.weight[self_attn][1]" in names and "verbs.density[1]" in names
    x = space.vector.x0()
    k = names.index("math.weight[self_attn][1]")
    x[k] = 0.123
    moved = space.recipe(x)
    assert moved["models"][0]["parameters"]["weight"][0]["value"] == [0.2, 0.123, 1.0]
    assert moved["parameters"] == {"normalize": False}  # booleans are kept, not evolved


def test_bounds_hold_the_recipes_own_values():
    _, space = trial0_recipe("task_arithmetic.yml")
    dims = {d.name: d for d in space.vector.dims}
    assert dims["lambda"].x0 == 1.1 and dims["lambda"].high >= 1.1
    assert dims["math.weight"].low <= 0.9 <= dims["math.weight"].high


def test_init_prints_a_config_that_loads(tmp_path: Path):
    out = tmp_path / "cfg" / "from-ties.yml"
    out.parent.mkdir()
    r = CliRunner().invoke(
        main,
        ["init", "--from-recipe", str(COMMUNITY / "ties.yml"), "--task", "zoo_target_search",
         "--include-path", "fixtures/zoo/tasks", "--metric", "exact_match,flexible-extract",
         "-o", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    from mergekit_evo.config import load_search_config

    text = out.read_text()
    assert text.startswith("# mergekit-evo search config from the MergeKit recipe")
    cfg = load_search_config(out)  # paths relative to the config's folder resolve
    assert cfg.ps.recipe is not None and cfg.ps.recipe["merge_method"] == "ties"
    assert cfg.report is not None and cfg.report.tasks[0].name == "zoo_target_heldout"
    assert sorted(cfg.models) == ["math", "verbs"]
    stdout = CliRunner().invoke(
        main, ["init", "--from-recipe", str(COMMUNITY / "slerp.yml"), "--task", "x_search"]
    )
    assert stdout.exit_code == 0, stdout.output
    assert "merge_method: slerp" in stdout.output and "\nreport:" not in stdout.output


PASSTHROUGH = sorted(p.name for p in COMMUNITY.glob("passthrough*.yml"))


@pytest.mark.parametrize("name", PASSTHROUGH)
def test_passthrough_starts_dfs_from_its_layer_path(name: str, tmp_path: Path):
    """A frankenmerge becomes a DFS start whose trial 0 is the recipe, tensor for tensor, for
    any slice order: A's embeddings, the path, and the final norm and lm_head of the last
    slice's model (``dfs.head_model``: A, B, A, B ends on B), with the recipe's tokenizer
    (``tokenizer_source``, or its ``base_model``'s)."""
    import torch

    from mergekit_evo.space.dfs import DFSSpace

    assert {"passthrough_abab.yml", "passthrough_base_model.yml"} <= set(PASSTHROUGH)
    given = yaml.safe_load((COMMUNITY / name).read_text())
    last = given["slices"][-1]["sources"][0]["model"]
    _, cfg = search_config_from_recipe(COMMUNITY / name, tasks=ZOO_TASK)
    assert cfg.mode == "dfs" and cfg.dfs.pin_ends is False
    first = given["slices"][0]["sources"][0]["model"]
    assert cfg.dfs.head_model == (None if last == first else Path(last).name)
    space = DFSSpace.from_config(cfg)
    recipe = space.recipe(space.vector.decode(space.vector.start_params()))
    (tmp_path / "trial0.yml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    want = mergekit_yaml(COMMUNITY / name, tmp_path / "want")
    got = mergekit_yaml(tmp_path / "trial0.yml", tmp_path / "got")
    assert sorted(got) == sorted(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    tok = given.get("tokenizer_source") or given.get("base_model")
    if tok is not None:  # the recipe's tokenizer, built (or copied) the same way
        assert recipe["tokenizer_source"].endswith(Path(tok).name)
    # the vocabulary and merges (tokenizer_config.json may differ in how MergeKit wrote it)
    assert json.loads((tmp_path / "got" / "tokenizer.json").read_text()) == json.loads(
        (tmp_path / "want" / "tokenizer.json").read_text()
    )
    r = CliRunner().invoke(main, ["init", "--from-recipe", str(COMMUNITY / name), "--task", "t"])
    assert r.exit_code == 0, r.output
    assert "mode: dfs" in r.output and "start_path" in r.output
    assert "lm_head" not in r.output.split("mode: dfs")[0]  # nothing about the head is lost
    assert ("Not kept" in r.output) == ("base_model" in given), r.output


def test_bad_files_say_what_is_wrong(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text("models: [a\n")
    r = CliRunner().invoke(main, ["init", "--from-recipe", str(bad)])
    assert r.exit_code != 0 and "not valid YAML" in r.output and "line" in r.output
    bad.write_text("models: []\n")
    r = CliRunner().invoke(main, ["init", "--from-recipe", str(bad)])
    assert "no merge_method" in r.output
    bad.write_text("merge_method: passthrough\nmodels: [{model: fixtures/zoo/math}]\n")
    r = CliRunner().invoke(main, ["init", "--from-recipe", str(bad)])
    assert r.exit_code != 0 and "needs slices" in r.output
    bad.write_text(
        "merge_method: passthrough\nslices:\n- sources:\n  - {model: fixtures/zoo/math, "
        "layer_range: [0, 9]}\n"
    )
    r = CliRunner().invoke(main, ["init", "--from-recipe", str(bad)])
    assert r.exit_code != 0 and "layers 0..7" in r.output, r.output


def test_conflicting_ps_options_are_named():
    data, _ = search_config_from_recipe(COMMUNITY / "ties.yml", tasks=ZOO_TASK)
    from mergekit_evo.config import parse_search_config, resolve_paths

    data["ps"]["filters"] = ["mlp"]
    data["ps"]["bounds"] = {"gamma": [0, 1]}
    data["ps"]["recipe"]["models"][1]["model"] = "fixtures/zoo/tokenizer"
    cfg = resolve_paths(parse_search_config(data), ROOT)
    with pytest.raises(ConfigError) as e:
        PSSpace.from_config(cfg)
    fields = [f for f, _ in e.value.errors]
    assert "ps.filters" in fields and "ps.bounds.gamma" in fields
    assert "ps.recipe.models.1.model" in fields


def test_search_from_recipe_runs_the_recipe_first(tmp_path: Path):
    import torch

    run = tmp_path / "run"
    r = CliRunner().invoke(
        main,
        ["search", "--from-recipe", str(COMMUNITY / "dare_ties.yml"), "--task",
         "zoo_target_search", "--include-path", "fixtures/zoo/tasks", "--metric",
         "exact_match,flexible-extract", "--limit", "8", "--max-trials", "2", "--out", str(run)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (run / "trials" / "00000.yml").exists() and (run / "trials" / "00001.yml").exists()
    want = mergekit_yaml(COMMUNITY / "dare_ties.yml", tmp_path / "want")
    got = mergekit_yaml(run / "trials" / "00000.yml", tmp_path / "got")
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_shipped_7b_configs_parse_offline():
    """recipes/: the paper's PS+DFS config and the --from-recipe example (hub models, GPU)."""
    from mergekit_evo.config import load_search_config

    paper = load_search_config(ROOT / "recipes" / "paper-ps-dfs-7b.yml")
    assert paper.mode == "ps_dfs" and paper.ps.method == "dare_ties"
    assert set(paper.models) == {"shisa", "wizardmath", "abel"} and paper.dfs.repeats == 3
    task = paper.fitness.tasks[0]
    assert task.name == "evo_mgsm_direct_ja_search" and task.require_language == "ja"
    data, cfg = search_config_from_recipe(
        ROOT / "recipes" / "community" / "dare-ties-7b.yml",
        tasks=["evo_mgsm_direct_ja_search"],
        require_language="ja",
    )
    assert cfg.base_model == "mistralai/Mistral-7B-v0.1" and len(cfg.models) == 3
    assert cfg.dtype == "bfloat16" and cfg.fitness.tasks[0].require_language == "ja"
    assert cfg.report is not None and cfg.report.tasks[0].name == "evo_mgsm_direct_ja_heldout"
    names = RecipeSpace.from_config(cfg).vector.names
    assert names == [f"{m}.{p}" for m in ("shisa-gamma-7b-v1", "WizardMath-7B-V1_1",
                     "Abel-7B-002") for p in ("density", "weight")]  # fmt: skip
