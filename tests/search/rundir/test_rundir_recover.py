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
