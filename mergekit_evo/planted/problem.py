"""Build a planted problem on disk: sources, hidden target, sampled-text task, planted fitness.

Layout under ``root``::

    models/base, models/ft1, models/ft2      shared by every kind
    <kind>/target/                           the hidden target (merged by the planted recipe)
    <kind>/tasks/planted_<kind>_search.yaml        lm-eval task (include_path), + planted_data.py
    <kind>/data/planted_<kind>_search.jsonl       texts sampled from the target
    <kind>/problem.json                      recipe, planted fitness, settings

Kinds: ``ps`` (task_arithmetic weights), ``dfs`` (a path over ft1 -> ft2 with scales) and
``ps_dfs`` (the PS merge as model A, ft2 as model B); ``dfs_r<seed>`` is a DFS problem whose
path and scales are drawn by :func:`~mergekit_evo.planted.recipes.random_dfs_plan` (its *mode*,
the search mode and the goal, is ``dfs``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from mergekit_evo.planted import recipes
from mergekit_evo.planted.models import add_task_vector, make_base

Mode = Literal["ps", "dfs", "ps_dfs"]
Kind = str  # a mode, or ``dfs_r<seed>`` (a random DFS plan)
KINDS: tuple[Mode, ...] = ("ps", "dfs", "ps_dfs")


def mode_of(kind: str) -> Mode:
    """The search mode of a problem kind (``dfs_r<seed>`` is a ``dfs`` problem)."""
    if kind in KINDS:
        return kind  # type: ignore[return-value]
    if recipes.random_seed_of(kind) is not None:
        return "dfs"
    raise ValueError(f"unknown planted kind {kind!r}: one of {KINDS} or dfs_r<seed>")


def plan_of(kind: str) -> recipes.DFSPlan | None:
    """The planted DFS plan of a kind (None for ``ps``)."""
    seed = recipes.random_seed_of(kind)
    if seed is not None:
        return recipes.random_dfs_plan(seed)
    return {"ps": None, "dfs": recipes.DFS_PLAN, "ps_dfs": recipes.PS_DFS_PLAN}[mode_of(kind)]


@dataclass(frozen=True)
class ProblemSettings:
    """Everything that shapes the landscape (recorded in problem.json and docs/planted.json)."""

    n_words: int = 60
    num_layers: int = recipes.N_LAYERS
    hidden: int = 32
    init_range: float = 0.3  # peaked base outputs (see models.py)
    rel_norm: float = 0.3  # |tau| / |W| per tensor
    n_texts: int = 128
    n_tokens: int = 48
    model_seed: int = 0
    sample_seed: int = 1234
    batch_size: int = 64


@dataclass
class PlantedProblem:
    """A built planted problem: where everything is and what the optimum is."""

    kind: Kind
    root: Path
    base: str
    models: dict[str, str]  # ft1, ft2
    recipe: dict[str, Any]  # the planted (hidden) recipe
    task: str
    tasks_dir: str
    planted_fitness: float
    settings: ProblemSettings = field(default_factory=ProblemSettings)

    @property
    def mode(self) -> Mode:
        return mode_of(self.kind)

    @property
    def plan(self) -> recipes.DFSPlan | None:
        return plan_of(self.kind)

    def fitness_spec(self) -> dict[str, Any]:
        """The :class:`mergekit_evo.fitness.FitnessSpec` fields of this problem."""
        return {
            "tasks": [{"name": self.task, "metric": f"{_metric()},none"}],
            "batch_size": self.settings.batch_size,
            "include_path": [self.tasks_dir],
        }

    def search_config(self, max_trials: int, seed: int, **extra: Any) -> dict[str, Any]:
        """A SearchConfig mapping for the project's search on this problem."""
        cfg: dict[str, Any] = {
            "mode": self.mode,
            "models": dict(self.models),
            "fitness": {
                "tasks": [{"name": self.task, "metric": f"{_metric()},none"}],
                "batch_size": self.settings.batch_size,
                "include_path": [self.tasks_dir],
            },
            "optimizer": {"sampler": "cmaes", "seed": seed},
            "budget": {"max_trials": max_trials},
            "dtype": "float32",
            "baselines": False,
        }
        if self.mode in ("ps", "ps_dfs"):
            cfg["base_model"] = self.base
            cfg["ps"] = {"method": "task_arithmetic", "parameters": ["weight"]}
        if self.mode in ("dfs", "ps_dfs"):
            cfg["dfs"] = {
                "repeats": recipes.REPEATS,
                "scales": "compact",
                "pin_ends": False,
                "init_scales": "ones",
            }
        if self.mode == "ps_dfs":
            cfg["ps_dfs"] = {"partner": "ft2"}
        for key, value in extra.items():  # one level deep: {"dfs": {"repeats": 3}} keeps the rest
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key] = {**cfg[key], **value}
            else:
                cfg[key] = value
        return cfg

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["root"] = str(self.root)
        return d


def _metric() -> str:
    from mergekit_evo.planted.task import METRIC

    return METRIC


def build_sources(root: Path, s: ProblemSettings) -> tuple[str, dict[str, str]]:
    """models/base, models/ft1, models/ft2 (reused when already built)."""
    mdir = root / "models"
    base = mdir / "base"
    if not (base / "config.json").exists():
        make_base(
            base,
            n_words=s.n_words,
            num_layers=s.num_layers,
            hidden=s.hidden,
            init_range=s.init_range,
            seed=s.model_seed,
        )
    models = {}
    for k in (1, 2):
        out = mdir / f"ft{k}"
        if not (out / "config.json").exists():
            add_task_vector(base, out, rel_norm=s.rel_norm, seed=s.model_seed * 100 + k)
        models[f"ft{k}"] = str(out)
    return str(base), models


def planted_recipe(kind: Kind, base: str, models: dict[str, str]) -> dict[str, Any]:
    srcs = [models["ft1"], models["ft2"]]
    mode, plan = mode_of(kind), plan_of(kind)
    if mode == "ps":
        return recipes.ps_recipe(base, srcs, recipes.PS_WEIGHTS)
    assert plan is not None
    if mode == "dfs":
        return recipes.dfs_recipe(models["ft1"], models["ft2"], plan)
    return recipes.ps_dfs_recipe(base, srcs, recipes.PS_WEIGHTS, models["ft2"], plan)


def build_problem(
    root: str | os.PathLike[str], kind: Kind, settings: ProblemSettings | None = None
) -> PlantedProblem:
    """Build (or reuse) the problem of ``kind`` under ``root``; scores the planted optimum.

    A problem.json is reused only when its settings and its planted recipe are the ones the code
    gives now (a changed plan rebuilds the target instead of scoring a stale one).
    """
    import torch
    import transformers

    from mergekit_evo.candidate.disk import DiskCandidateBuilder
    from mergekit_evo.fitness import FitnessEvaluator
    from mergekit_evo.planted.task import sample_texts, texts_from_ids, write_task

    s = settings or ProblemSettings()
    root = Path(root).resolve()
    kdir = root / kind
    meta_path = kdir / "problem.json"
    base, models = build_sources(root, s)
    recipe = planted_recipe(kind, base, models)
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("settings") == asdict(s) and meta.get("recipe") == recipe:
            meta["settings"] = s
            meta["root"] = root
            return PlantedProblem(**meta)
    builder = DiskCandidateBuilder(dtype="float32")
    target_dir = builder.merge(recipe, kdir / "target")
    target = transformers.AutoModelForCausalLM.from_pretrained(str(target_dir), dtype=torch.float32)
    tok = transformers.AutoTokenizer.from_pretrained(str(target_dir))
    seqs = sample_texts(target, tok, s.n_texts, s.n_tokens, seed=s.sample_seed)
    texts = texts_from_ids(tok, seqs)
    task = f"planted_{kind}_search"  # a search split by name (fitness.registry.is_report_split)
    tasks_dir = write_task(
        kdir, task, texts, s.n_tokens, f"{s.n_texts} texts sampled from the {kind} target"
    )
    problem = PlantedProblem(
        kind=kind,
        root=root,
        base=base,
        models=models,
        recipe=recipe,
        task=task,
        tasks_dir=str(tasks_dir),
        planted_fitness=float("nan"),
        settings=s,
    )
    evaluator = FitnessEvaluator(problem.fitness_spec())
    problem.planted_fitness = evaluator.score(target.eval(), tok).score
    meta_path.write_text(json.dumps(problem.to_json(), indent=2))
    return problem
