"""The run directory: where each file of a search lives, and atomic writes into it.

Layout: ``config.yml`` (the search config, as given), ``run.json`` (storage, study names),
``study.journal`` (the default Optuna storage; ``study.db`` in run directories made before),
``trials/NNNNN.yml`` (every proposal, written before it is merged), ``best.yml``,
``metrics.json``, ``trials.csv``, ``champion/`` (``--save-champion``), ``work/`` (scratch).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from mergekit_evo.atomic import remove_partials
from mergekit_evo.atomic import write_text as atomic_write_text


class RunDir:
    """Paths and writers for one run directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()

    @property
    def config(self) -> Path:
        return self.root / "config.yml"

    @property
    def run_info(self) -> Path:
        return self.root / "run.json"

    @property
    def journal(self) -> Path:
        return self.root / "study.journal"

    @property
    def default_storage(self) -> str:
        """The embedded storage of a new run: a journal file every local process can share."""
        return str(self.journal)

    @property
    def legacy_storage(self) -> str:
        """The embedded storage of run directories made before the journal (SQLite)."""
        return f"sqlite:///{self.root / 'study.db'}"

    @property
    def worker_config(self) -> Path:
        """The effective config (CLI overrides applied) the processes a run starts read."""
        return self.work / "worker-config.yml"

    @property
    def trials(self) -> Path:
        return self.root / "trials"

    @property
    def best(self) -> Path:
        return self.root / "best.yml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def trials_csv(self) -> Path:
        return self.root / "trials.csv"

    @property
    def pareto(self) -> Path:
        return self.root / "pareto.json"

    @property
    def champion(self) -> Path:
        return self.root / "champion"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def trial_yaml(self, number: int, prefix: str = "") -> Path:
        """``trials/NNNNN.yml``; two-stage searches prefix the stage (``ps-NNNNN.yml``)."""
        return self.trials / f"{prefix}{number:05d}.yml"

    def create(self) -> None:
        for d in (self.root, self.trials, self.work):
            d.mkdir(parents=True, exist_ok=True)

    def recover(self) -> None:
        """After a crash: a folder caught between the two renames of :meth:`replace_dir` is put
        back (``champion/`` is never missing because of a kill), and the temporary files of
        interrupted :meth:`write_text` calls are removed.  Only the owner may call this, holding
        RUN_DIR's lock (never a worker sharing the directory): no live writer's file is touched."""
        if not self.root.is_dir():
            return
        for old in self.root.glob(".*.old"):
            if not old.is_dir():
                continue
            dst = old.with_name(old.name[1 : -len(".old")])
            if dst.exists():  # the new folder is in place; the old one was about to go
                shutil.rmtree(old, ignore_errors=True)
            else:  # killed between the renames: the previous folder is whole, restore it
                old.rename(dst)
        for folder in (self.root, self.trials, self.root / "plots", self.champion):
            remove_partials(folder)

    def write_text(self, path: Path, text: str) -> None:
        """Write via a temporary file + rename, so readers never see half a file."""
        atomic_write_text(path, text)

    def write_yaml(self, path: Path, doc: dict[str, Any], header: str = "") -> None:
        self.write_text(path, header + yaml.safe_dump(doc, sort_keys=False))

    def write_recipe(self, path: Path, recipe: dict[str, Any], header: str = "") -> None:
        """A MergeKit recipe, its model paths relative to the working directory when inside it
        (what ``mergekit-yaml`` run from there reads; no machine's absolute paths)."""
        from mergekit_evo.recipe_paths import portable_recipe

        self.write_yaml(path, portable_recipe(recipe), header=header)

    def write_json(self, path: Path, doc: Any) -> None:
        self.write_text(path, json.dumps(doc, indent=2, sort_keys=False) + "\n")

    def replace_dir(self, src: Path, dst: Path) -> None:
        """Move ``src`` over ``dst`` (the old ``dst`` removed first)."""
        old = dst.with_name(f".{dst.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if dst.exists():
            dst.rename(old)
        shutil.move(str(src), str(dst))
        if old.exists():
            shutil.rmtree(old)
