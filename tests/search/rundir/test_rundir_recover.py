"""A kill between the two renames of RunDir.replace_dir, or inside an atomic write, is undone by
the next owner: champion/ is never lost, no temporary file lingers."""

from __future__ import annotations

from mergekit_evo.search.rundir.files import RunDir


def test_killed_between_renames_restores_the_previous_folder(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.create()
    old = rd.root / ".champion.old"
    old.mkdir()
    (old / "model.safetensors").write_text("previous champion")
    rd.recover()  # the next run, holding the lock
    assert (rd.champion / "model.safetensors").read_text() == "previous champion"
    assert not old.exists()


def test_killed_after_the_move_keeps_the_new_folder(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.create()
    (rd.root / ".champion.old").mkdir()
    rd.champion.mkdir()
    (rd.champion / "config.json").write_text("new")
    rd.recover()
    assert (rd.champion / "config.json").read_text() == "new"
    assert not (rd.root / ".champion.old").exists()


def test_temporary_files_of_interrupted_writes_are_removed(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.create()
    (rd.root / ".best.yml.k2j4x_9a").write_text("half a fi")
    (rd.trials / ".00003.yml.ab12cd34").write_text("merge_meth")
    (rd.root / ".lock").write_text("pid 1")
    rd.write_text(rd.best, "whole\n")
    rd.create()  # a worker sharing the directory (no lock) must not touch them
    assert (rd.root / ".best.yml.k2j4x_9a").exists()
    rd.recover()
    names = sorted(p.name for p in rd.root.iterdir())
    assert names == [".lock", "best.yml", "trials", "work"]
    assert list(rd.trials.iterdir()) == []


def test_report_files_are_written_whole_and_their_partials_removed(tmp_path, monkeypatch):
    """report.html, plots/*.png and champion/README.md go through write-then-rename: a write
    that dies before its rename leaves the previous file, and the next owner removes the rest."""
    import os

    import pytest

    from mergekit_evo.report.write import write_run_report

    rd = RunDir(tmp_path / "run")
    rd.create()
    rd.champion.mkdir()
    (rd.root / "plots").mkdir()
    for f in (rd.root / "report.html", rd.champion / "README.md"):
        f.write_text("previous, whole\n")
    rd.write_text(rd.best, "merge_method: linear\nmodels: []\n")
    cfg = {"mode": "ps", "models": {"a": "/m/a"}, "fitness": {"tasks": ["t"]}}
    rows = [{"number": 0, "stage": "ps", "state": "COMPLETE", "fitness": "0.5", "yaml": "x"}]
    metrics = {"mode": "ps", "champion_fitness": 0.5, "baseline_fitness": {"a": 0.4}}

    def killed(src: str, dst: str) -> None:
        raise KeyboardInterrupt  # as if the process died between the write and the rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_run_report(rd.root, metrics, rows, cfg, None)
    monkeypatch.undo()
    assert (rd.root / "report.html").read_text() == "previous, whole\n"
    assert (rd.champion / "README.md").read_text() == "previous, whole\n"
    assert list((rd.root / "plots").iterdir()) == []  # the first PNG never got its name
    for name in (".report.html.x1y2z3w4", ".fitness.png.abcd1234"):
        (rd.root / "plots" / name).write_bytes(b"half")
    (rd.champion / ".README.md.abcd1234").write_text("half")
    rd.recover()
    assert list((rd.root / "plots").iterdir()) == []
    assert sorted(p.name for p in rd.champion.iterdir()) == ["README.md"]
    written = write_run_report(rd.root, metrics, rows, cfg, None)
    assert (rd.root / "report.html").read_text().rstrip().endswith("</html>")
    assert written["card"].read_text().startswith("---\n")
