"""A finished zoo run explains itself: report.html with inline plots, the PNGs, the model card.

One short PS+DFS search on the committed zoo (both stages, a report split, --save-champion),
then the files are checked as a reader would: each PNG opens as a real, non-blank image, the
HTML holds every picture inline, the card's front matter parses as the Hub reads it, and no
output carries the machine's absolute paths.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mergekit_evo.report.plots import pareto_plot, ps_table

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "fixtures" / "zoo"


def _check_png(data: bytes) -> None:
    from PIL import Image, ImageStat

    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    img = Image.open(io.BytesIO(data))
    img.verify()
    img = Image.open(io.BytesIO(data)).convert("L")
    assert img.width >= 300 and img.height >= 200
    lo, hi = img.getextrema()
    assert hi - lo > 100  # something is drawn, not a blank canvas
    assert ImageStat.Stat(img).stddev[0] > 5


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    from mergekit_evo.config import load_search_config
    from mergekit_evo.search import apply_overrides, run_search

    run = tmp_path_factory.mktemp("zoorun") / "run"
    old = os.getcwd()
    os.chdir(REPO)  # as the README's main job: outputs' paths relative to the checkout
    try:
        cfg = apply_overrides(load_search_config(REPO / "recipes" / "zoo-ps-dfs.yml"), max_trials=4)
        cfg = cfg.model_copy(
            update={
                "fitness": cfg.fitness.model_copy(update={"limit": 6}),
                "report": cfg.report.model_copy(update={"limit": 6}) if cfg.report else None,
                "ps_dfs": cfg.ps_dfs.model_copy(update={"ps_trials": 2}),
            }
        )
        run_search(cfg, run, save_champion=True, log=lambda _: None)
    finally:
        os.chdir(old)
    return run


def test_pngs_html_and_card_of_a_finished_zoo_run(zoo_run: Path):
    pngs = sorted((zoo_run / "plots").glob("*.png"))
    names = {p.name for p in pngs}
    assert {"fitness.png", "ps_parameters.png", "dfs_path.png", "report_split.png"} <= names
    for p in pngs:
        _check_png(p.read_bytes())
    page = (zoo_run / "report.html").read_text()
    inline = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(inline) == len(pngs)  # every picture inline, nothing linked
    for data in inline:
        _check_png(base64.b64decode(data))
    assert 'src="http' not in page and "<link" not in page
    metrics = json.loads((zoo_run / "metrics.json").read_text())
    assert f"{metrics['champion_fitness']:.4f}" in page

    card = (zoo_run / "champion" / "README.md").read_text()
    m = re.match(r"^---\n(.*?)\n---\n", card, re.S)
    assert m, card[:200]
    front = yaml.safe_load(m.group(1))
    assert front["tags"] == ["merge", "mergekit", "mergekit-evo"]
    assert front["library_name"] == "transformers"
    assert front["base_model"] == "./fixtures/zoo/base"  # local to MergeKit, never a hub id
    assert "mergekit-yaml best.yml" in card and "zoo_target_search" in card
    assert "| math |" in card and "| **this model** |" in card
    best = (zoo_run / "best.yml").read_text()
    assert best.split("\n", 3)[3] in card  # the full recipe
    for text in (best, card, page):
        assert str(REPO) not in text and "/tmp" not in text


def test_report_command_rebuilds_everything(zoo_run: Path):
    from mergekit_evo.cli import main

    for p in (zoo_run / "plots").glob("*.png"):
        p.unlink()
    (zoo_run / "report.html").unlink()
    r = CliRunner().invoke(main, ["report", str(zoo_run)])
    assert r.exit_code == 0, r.output
    assert (zoo_run / "report.html").exists() and (zoo_run / "plots" / "fitness.png").exists()
    assert "report.html" in r.output


def test_ps_table_reads_every_coordinate_form():
    rows, cols, m = ps_table(
        {"math.weight@0": 0.1, "math.weight@4": 0.2, "math.density": 0.5, "lambda": 1.1,
         "math.weight[self_attn][1]": 0.3, "s0.verbs.t[*]": 0.4, "path_length": ""}
    )  # fmt: skip
    assert rows == ["math.weight", "math.density", "lambda", "math.weight[self_attn]",
                    "s0.verbs.t[*]"]  # fmt: skip
    assert cols == ["all layers", "layers 0-3", "layers 4-7", "point 1"]
    assert m[0][1:3] == [0.1, 0.2] and m[3][3] == 0.3


def test_pareto_plot_of_two_objectives():
    rows = [
        {"state": "COMPLETE", "objective_0": a, "objective_1": b}
        for a, b in [(0.1, 0.9), (0.5, 0.5), (0.4, 0.4), (0.9, 0.1)]
    ]
    _check_png(pareto_plot(rows, ["task_a", "task_b"]) or b"")
    assert pareto_plot([{"state": "COMPLETE", "objective_0": 1.0}], ["a"]) is None


def test_card_says_where_a_from_recipe_search_started():
    from mergekit_evo.report.card import model_card

    cfg = {"mode": "ps", "models": {"a": "x/a"}, "ps": {"recipe": {"merge_method": "ties"}},
           "fitness": {"tasks": [{"name": "t"}]}}  # fmt: skip
    metrics = {"start_fitness": 0.22, "gain_over_start": 0.364, "champion_fitness": 0.3}
    card = model_card(cfg, metrics, "merge_method: ties\n")
    assert "started from a given MergeKit recipe" in card and "+36.4%" in card
    assert "started from" not in model_card({**cfg, "ps": {}}, metrics, "merge_method: ties\n")


def test_ps_table_names_layer_groups():
    _, cols, _ = ps_table({"m.weight@0": 0.1, "m.weight@2": 0.2, "m.weight@4": 0.3})
    assert cols == ["layers 0-1", "layers 2-3", "layers 4-5"]
