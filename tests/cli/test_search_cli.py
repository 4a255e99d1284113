"""``mergekit-evo search / worker / status / best / report`` on a tiny PS search."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mergekit_evo.cli import main
from tests.search.family import make_family, write_config

LINE = re.compile(r"^trial\s+(\d+)\s+fitness (-?\d+\.\d+)\s+best (-?\d+\.\d+).*\((\d+\.\d) s\)$")


@pytest.fixture(scope="module")
def fam(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_family(tmp_path_factory.mktemp("clifamily"))


def test_help_is_fast_and_lists_options():
    exe = Path(sys.executable).parent / "mergekit-evo"
    t0 = time.monotonic()
    out = subprocess.run([str(exe), "search", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--out", "--max-trials", "--device", "--storage", "--seed", "--save-champion"):
        assert flag in out.stdout
    assert time.monotonic() - t0 < 20  # no torch / lm-eval import for --help


def test_search_status_best_report_and_worker(fam, tmp_path):
    cfg = write_config(tmp_path / "ps.yml", fam, "ps")
    run = tmp_path / "run"
    r = CliRunner().invoke(
        main, ["search", str(cfg), "--out", str(run), "--max-trials", "3", "--seed", "7"]
    )
    assert r.exit_code == 0, r.output
    lines = [m for line in r.stdout.splitlines() if (m := LINE.match(line.strip()))]
    assert [int(m.group(1)) for m in lines] == [0, 1, 2]
    best_seen = [float(m.group(3)) for m in lines]
    assert best_seen == sorted(best_seen)  # best so far never decreases
    assert float(lines[-1].group(3)) == max(float(m.group(2)) for m in lines)

    st = CliRunner().invoke(main, ["status", str(run), "--json"])
    assert st.exit_code == 0, st.output
    status = json.loads(st.output)
    assert status["stages"]["ps"]["trials"] == {"complete": 3}
    assert status["stages"]["ps"]["best_fitness"] == pytest.approx(max(best_seen), abs=1e-4)
    assert "ps: complete 3" in CliRunner().invoke(main, ["status", str(run)]).output

    b = CliRunner().invoke(main, ["best", str(run)])
    assert b.exit_code == 0
    assert b.output == (run / "best.yml").read_text()
    assert yaml.safe_load(b.output)["merge_method"] == "dare_ties"

    rep = CliRunner().invoke(main, ["report", str(run)])
    assert rep.exit_code == 0 and "champion" in rep.output
    assert "| **champion**" in (run / "report.md").read_text()

    # a worker joins the same study through its storage URL and adds trials up to the budget
    url = json.loads((run / "run.json").read_text())["storage"]
    w = CliRunner().invoke(
        main,
        ["worker", str(cfg), "--storage", url, "--out", str(tmp_path / "w"), "--max-trials", "5"],
    )
    assert w.exit_code == 0, w.output
    status = json.loads(CliRunner().invoke(main, ["status", str(run), "--json"]).output)
    assert status["stages"]["ps"]["trials"] == {"complete": 5}
    assert sorted(p.name for p in (tmp_path / "w" / "trials").iterdir()) == [
        "00003.yml",
        "00004.yml",
    ]


def test_status_of_a_non_run_dir_fails(tmp_path):
    r = CliRunner().invoke(main, ["status", str(tmp_path)])
    assert r.exit_code != 0 and "not a mergekit-evo run directory" in r.output


def test_worker_joins_a_search_started_from_a_recipe(tmp_path, monkeypatch):
    """``worker --from-recipe`` (with the search's --task options) runs the config ``search
    --from-recipe`` runs, so it joins the same study (the run itself: the worker test above)."""
    import click

    from mergekit_evo.search.run import runner
    from mergekit_evo.search.run.identity import identity

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)  # the recipe's model paths are relative to the repository
    seen: dict[str, object] = {}

    def record(cfg: object, out: object, role: str = "search", **kw: object) -> None:
        seen[role] = cfg
        raise click.exceptions.Exit(0)

    monkeypatch.setattr(runner, "run_search", record)
    task = ["--task", "zoo_target_search", "--include-path", "fixtures/zoo/tasks", "--limit", "4"]
    for recipe in ("linear.yml", "passthrough_abab.yml"):
        path = str(root / "examples" / "community" / recipe)
        r = CliRunner().invoke(main, ["search", "--from-recipe", path, *task, "--out", "r"])
        assert r.exit_code == 0, r.output
        w = CliRunner().invoke(
            main,
            ["worker", "--from-recipe", path, *task, "--storage", str(tmp_path / "j.journal"),
             "--out", str(tmp_path / "w"), "--max-trials", "3"],
        )  # fmt: skip
        assert w.exit_code == 0, w.output
        search, worker = seen["search"], seen["worker"]
        assert identity(worker) == identity(search)  # type: ignore[arg-type]
        assert worker.study_name == search.study_name  # type: ignore[attr-defined]
        assert worker.budget.max_trials == 3  # type: ignore[attr-defined]
    bad = CliRunner().invoke(
        main, ["worker", "--from-recipe", path, "--storage", "j", "--out", "x"]
    )
    assert bad.exit_code == 2 and "--from-recipe needs --task" in bad.output
    both = CliRunner().invoke(
        main, ["worker", "c.yml", "--from-recipe", path, *task, "--storage", "j", "--out", "x"]
    )
    assert both.exit_code == 2 and "not both" in both.output
