"""A community MergeKit recipe -> a search config that starts from it (``--from-recipe``).

Thousands of hand-tuned merges are published as MergeKit YAML.  This turns one into a PS search
config whose genome is the recipe itself (``ps.recipe``, see :mod:`mergekit_evo.space.template`):
the recipe's method, structure and values are kept, its numbers become the start point, and
trial 0 is the recipe.  :func:`config_text` writes the same config as commented YAML for
``mergekit-evo init``; ``search --from-recipe`` validates :func:`config_from_recipe` directly.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import yaml

from mergekit_evo.config import ConfigError, SearchConfig
from mergekit_evo.recipe_paths import local_reference, map_models, recipe_models

#: the shipped task a config without ``--task`` names (a placeholder to replace)
DEFAULT_TASK = "evo_gsm8k_search"
_DTYPES = ("float32", "float16", "bfloat16")


def read_recipe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a MergeKit recipe YAML; raises :class:`ConfigError` naming the file."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as e:
        raise ConfigError([("--from-recipe", f"cannot read {str(p)!r}: {e.strerror}")]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        why = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(
            [("--from-recipe", f"{str(p)!r} is not valid YAML: {why}{where}")]
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("merge_method"), str):
        raise ConfigError(
            [("--from-recipe", f"{str(p)!r} is not a MergeKit recipe (no merge_method: key)")]
        )
    return doc


def model_name(path: str, taken: set[str]) -> str:
    """A search config's name for a model: its folder name, made safe and unique in ``taken``."""
    name = os.path.basename(path.rstrip("/")) or path
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "model"
    if name == "ps":
        name = "ps_model"
    out, k = name, 2
    while out in taken:
        out, k = f"{name}_{k}", k + 1
    taken.add(out)
    return out


def _locate(path: str, recipe_dir: Path, out_dir: Path) -> str:
    """A model path as the config should hold it (relative to ``out_dir`` when local).

    MergeKit reads relative recipe paths from the working directory; a path that only exists
    beside the recipe file is accepted too.  Hub ids are kept as they are.
    """
    if os.path.isdir(path):
        local = Path(path)
    elif not os.path.isabs(path) and (recipe_dir / path).is_dir():
        local = recipe_dir / path
    else:
        return path
    return local_reference(os.path.relpath(local.resolve(), out_dir.resolve()))


def passthrough_path(
    recipe: dict[str, Any],
) -> tuple[list[str], list[tuple[str, int]], list[str]]:
    """(models in order of first use, the layer path, what a DFS start cannot keep) of a
    ``passthrough`` frankenmerge; raises :class:`ConfigError` if it has no layer path.

    Kept (by :func:`_dfs_config`): the path, the embeddings (the first slice's model, model
    A), the final norm and lm_head (the last slice's model: ``dfs.head_model``) and the
    tokenizer (``tokenizer_source``, else the ``base_model``'s: ``dfs.tokenizer_source``)."""
    slices = recipe.get("slices")
    if not isinstance(slices, list) or not slices:
        raise ConfigError(
            [("--from-recipe", "a passthrough recipe needs slices: (its layer path) to start DFS")]
        )
    models: list[str] = []
    path: list[tuple[str, int]] = []
    lost: list[str] = []
    for j, sl in enumerate(slices):
        srcs = (sl or {}).get("sources") or []
        if len(srcs) != 1 or not isinstance(srcs[0], dict) or "model" not in srcs[0]:
            raise ConfigError(
                [(f"--from-recipe: slices.{j}.sources", "passthrough takes one model per slice")]
            )
        src = srcs[0]
        rng = src.get("layer_range")
        if not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(v, int) for v in rng)):
            raise ConfigError(
                [
                    (
                        f"--from-recipe: slices.{j}.sources.0.layer_range",
                        f"need [start, end], got {rng!r}",
                    )
                ]
            )
        model = str(src["model"])
        if model not in models:
            models.append(model)
        path += [(model, layer) for layer in range(rng[0], rng[1])]
        blocks = [
            (f"slices.{j}", sl.get("parameters")),
            (f"slices.{j}.sources.0", src.get("parameters")),
        ]
        for where, params in blocks:
            if params:
                lost.append(
                    f"{where}.parameters {params} (DFS scales the hidden state between layers "
                    "instead: dfs.scales)"
                )
    base = recipe.get("base_model")
    if isinstance(base, str) and base != models[0]:
        lost.append(
            f"base_model {base!r} as the donor of config.json (a DFS merge writes model A's, "
            f"{models[0]})"
        )
    tok = tokenizer_donor(recipe)
    if tok is not None and tok not in ("union", *models):
        lost.append(
            f"the tokenizer of {tok!r}, a model outside the slices (a DFS merge uses model A's)"
        )
    for key in recipe.get("parameters") or {}:
        lost.append(f"parameters.{key}")
    return models, path, lost


def tokenizer_donor(recipe: dict[str, Any]) -> str | None:
    """Whose tokenizer a passthrough recipe's output gets: its ``tokenizer_source`` ('base':
    the base model's), else the ``base_model``'s (MergeKit copies it), else None (the first
    slice's model, model A)."""
    tok = recipe.get("tokenizer_source")
    base = recipe.get("base_model")
    if tok == "base" or tok is None:
        tok = base if isinstance(base, str) else None
    return tok if isinstance(tok, str) else None


def _two_model_method(method: str) -> bool:
    """Whether the method interpolates between exactly two models, its base one of them."""
    from mergekit.merge_methods import registry

    try:
        contract = registry.get(method).spec.contract
    except Exception:
        return False
    return contract.max_inputs == 2


def _report_twin(task: str, include_path: list[str]) -> str | None:
    """``X_heldout`` (or ``X``) for a search-split task ``X_search``, if such a task exists."""
    from mergekit_evo.fitness.registry import SHIPPED_TASKS

    if not task.endswith("_search"):
        return None
    stem = task.removesuffix("_search")
    for cand in (f"{stem}_heldout", stem):
        if cand in SHIPPED_TASKS:
            return cand
        for d in include_path:
            for f in Path(d).glob("*.y*ml") if Path(d).is_dir() else []:
                if f"task: {cand}\n" in f.read_text(errors="replace"):
                    return cand
    return None


def config_from_recipe(
    recipe: dict[str, Any],
    *,
    recipe_dir: str | os.PathLike[str] = ".",
    out_dir: str | os.PathLike[str] = ".",
    tasks: list[str] | None = None,
    metric: str | None = None,
    require_language: str | None = None,
    include_path: list[str] | None = None,
    limit: int | float | None = None,
    max_trials: int | None = None,
) -> dict[str, Any]:
    """The search config mapping (not yet validated) that starts from ``recipe``.

    Local paths are written relative to ``out_dir`` (where the config will live), which is
    where :func:`mergekit_evo.config.load_search_config` looks for them.
    """
    rdir, odir = Path(recipe_dir), Path(out_dir)
    if recipe.get("merge_method") in ("dfs", "ps_dfs"):
        raise ConfigError(
            [
                (
                    "--from-recipe",
                    f"a {recipe['merge_method']} recipe is a search's result, not a start a "
                    "search can take as it is; start from its PS part (mode: ps_dfs, ps.recipe: "
                    "the PS stage's merge) or from a passthrough of its layers",
                )
            ]
        )
    doc = map_models(recipe, lambda p: _locate(p, rdir, odir))
    if doc.get("merge_method") == "passthrough":
        return _dfs_config(
            doc, tasks, metric, require_language, include_path, limit, max_trials, odir
        )
    base = doc.get("base_model")
    taken: set[str] = set()
    models: dict[str, str] = {}
    # an interpolation endpoint (slerp's base) is a source too; a task-vector base is not
    endpoint = _two_model_method(str(doc["merge_method"]))
    for _, path in recipe_models(doc):
        if (path != base or endpoint) and path not in models.values():
            models[model_name(path, taken)] = path
    if not models and isinstance(base, str):  # e.g. a recipe that only reads its base
        models[model_name(base, taken)] = base
    cfg: dict[str, Any] = {"mode": "ps", "models": models}
    if isinstance(base, str):
        cfg["base_model"] = base
    cfg["ps"] = {"recipe": doc}
    cfg.update(_fitness(tasks, metric, require_language, include_path, limit, odir))
    cfg["optimizer"] = {"sampler": "cmaes", "seed": 0}
    cfg["budget"] = {"max_trials": max_trials or 100}
    if doc.get("dtype") in _DTYPES:
        cfg["dtype"] = doc["dtype"]
    return cfg


def _fitness(
    tasks: list[str] | None,
    metric: str | None,
    require_language: str | None,
    include_path: list[str] | None,
    limit: int | float | None,
    odir: Path,
) -> dict[str, Any]:
    """The fitness and (when every task has a held-out twin) report sections."""
    names = tasks or [DEFAULT_TASK]
    extra: dict[str, Any] = {"metric": metric} if metric else {}
    if require_language:
        extra["require_language"] = require_language
    incl = [
        local_reference(os.path.relpath(Path(p).resolve(), odir.resolve()))
        for p in include_path or []
    ]
    fitness: dict[str, Any] = {"tasks": [{"name": t, **extra} for t in names]}
    if incl:
        fitness["include_path"] = incl
    if limit is not None:
        fitness["limit"] = limit
    out = {"fitness": fitness}
    twins = [_report_twin(t, include_path or []) for t in names]
    if all(twins):
        out["report"] = {**fitness, "tasks": [{"name": t, **extra} for t in twins if t]}
    return out


def _dfs_config(
    doc: dict[str, Any],
    tasks: list[str] | None,
    metric: str | None,
    require_language: str | None,
    include_path: list[str] | None,
    limit: int | float | None,
    max_trials: int | None,
    odir: Path,
) -> dict[str, Any]:
    """A passthrough frankenmerge -> a DFS search starting from its layer path."""
    from mergekit_evo.config import num_layers
    from mergekit_evo.space.dfs import start_slots

    models, path, _ = passthrough_path(doc)
    taken: set[str] = set()
    names = {m: model_name(m, taken) for m in models}
    start = [[names[m], layer] for m, layer in path]
    counts = [
        num_layers(m) if os.path.isdir(m) else max(k for n, k in path if n == m) + 1 for m in models
    ]
    errors: list[tuple[str, str]] = []
    slots = start_slots([(n, int(layer)) for n, layer in start], [names[m] for m in models],
                        counts, 64, errors)  # fmt: skip
    if errors:
        raise ConfigError([("--from-recipe", msg) for _, msg in errors])
    needed = max(slots) // sum(counts) + 1
    cfg: dict[str, Any] = {"mode": "dfs", "models": {names[m]: m for m in models}}
    cfg["dfs"] = {
        "models": [names[m] for m in models],
        "repeats": max(needed, 2),
        "scales": "compact",
        "pin_ends": False,
        "start_path": start,
    }
    last = path[-1][0]
    if last != models[0]:  # passthrough takes the final norm and lm_head from the last slice
        cfg["dfs"]["head_model"] = names[last]
    tok = tokenizer_donor(doc)
    if tok == "union" or tok in names and tok != models[0]:
        cfg["dfs"]["tokenizer_source"] = names.get(tok, tok)
    cfg.update(_fitness(tasks, metric, require_language, include_path, limit, odir))
    cfg["optimizer"] = {"sampler": "cmaes", "seed": 0}
    cfg["budget"] = {"max_trials": max_trials or 100}
    if doc.get("dtype") in _DTYPES:
        cfg["dtype"] = doc["dtype"]
    return cfg


def _dump(key: str, value: Any, indent: int = 0) -> str:
    flow = None if isinstance(value, (dict, list)) else False  # a scalar stays `key: value`
    text = yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=flow, width=96)
    pad = " " * indent
    return "".join(pad + line + "\n" for line in text.splitlines())


def config_text(cfg: dict[str, Any], recipe_path: str, evolved: list[str]) -> str:
    """The config as commented YAML (what ``mergekit-evo init --from-recipe`` prints)."""
    method = cfg["ps"]["recipe"]["merge_method"]
    shown = ", ".join(evolved[:8]) + (f", ... ({len(evolved)} in all)" if len(evolved) > 8 else "")
    intro = (
        "Trial 0 is the recipe itself: merging RUN_DIR/trials/00000.yml gives the same tensors "
        f"as `mergekit-yaml {recipe_path} OUT --random-seed 0`. CMA-ES then evolves the "
        f"recipe's {len(evolved)} {method} numbers from their published values: {shown}. "
        "Model paths are relative to this file's folder (or to the working directory)."
    )
    out = [
        f"# mergekit-evo search config from the MergeKit recipe {recipe_path}",
        "#   mergekit-evo search THIS_FILE --out runs/NAME      (rerun to resume)",
        *textwrap.wrap(intro, 94, initial_indent="# ", subsequent_indent="# "),
        "",
        "mode: ps",
        "# source models: each is scored alone first (the baselines), and on the report split",
        _dump("models", cfg["models"]).rstrip("\n"),
    ]
    if "base_model" in cfg:
        out.append(_dump("base_model", cfg["base_model"]).rstrip("\n"))
    out += [
        "ps:",
        "  # the recipe as published; every float parameter of its method that it sets is",
        "  # evolved (keep only some with  parameters: [weight]); the search ranges are",
        "  # bounds: {weight: [0, 1], density: [0, 1], t: [0, 1], lambda: [0, 2], ...},",
        "  # widened to hold the recipe's own values",
        _dump("recipe", cfg["ps"]["recipe"], indent=2).rstrip("\n"),
        "# the fitness the search maximises (lm-eval tasks; use a search split, never the",
        "# split you report: `mergekit-evo tasks` lists the shipped ones)",
        _dump("fitness", cfg["fitness"]).rstrip("\n"),
    ]
    if "report" in cfg:
        out += [
            "# scored once at the end, for each source and the champion (never searched on)",
            _dump("report", cfg["report"]).rstrip("\n"),
        ]
    else:
        out.append("# report: {tasks: [...]}   # held-out tasks scored once at the end")
    out += [
        _dump("optimizer", cfg["optimizer"]).rstrip("\n"),
        "# stop after max_trials (patience: N generations without gain; target_fitness: X)",
        _dump("budget", cfg["budget"]).rstrip("\n"),
    ]
    if "dtype" in cfg:
        out.append(_dump("dtype", cfg["dtype"]).rstrip("\n"))
    out.append("merge_seed: 0   # MergeKit --random-seed (DARE, DELLA, breadcrumbs are random)")
    return "\n".join(out) + "\n"


def dfs_config_text(cfg: dict[str, Any], recipe_path: str, lost: list[str]) -> str:
    """The DFS config a passthrough recipe becomes, as commented YAML."""
    n = len(cfg["dfs"]["start_path"])
    intro = (
        f"A passthrough frankenmerge has no numbers to average; its {n}-layer path is the start "
        "of a data-flow-space (DFS) search instead: trial 0 stacks the same layers in the same "
        "order with every scale 1, then the search flips layers in and out and tunes the scales "
        "between models (a local search from the start, dfs.polish_share)."
    )
    out = [
        f"# mergekit-evo search config from the MergeKit recipe {recipe_path}",
        "#   mergekit-evo search THIS_FILE --out runs/NAME      (rerun to resume)",
        *textwrap.wrap(intro, 94, initial_indent="# ", subsequent_indent="# "),
    ]
    if lost:
        out.append("# Not kept from the recipe:")
        for item in lost:
            out += textwrap.wrap(item, 92, initial_indent="#  - ", subsequent_indent="#    ")
    out += [
        "",
        "mode: dfs",
        "# source models (model A first: embeddings and tokenizer; the final norm and head",
        "# are dfs.head_model's, the recipe's last slice's model, model A if not set)",
        _dump("models", cfg["models"]).rstrip("\n"),
        "# the start path: [model, layer] in order; repeats: how often the layout of all layers",
        "# repeats (the path may revisit a layer once per repetition)",
        _dump("dfs", cfg["dfs"]).rstrip("\n"),
        _dump("fitness", cfg["fitness"]).rstrip("\n"),
    ]
    if "report" in cfg:
        out.append(_dump("report", cfg["report"]).rstrip("\n"))
    out += [
        _dump("optimizer", cfg["optimizer"]).rstrip("\n"),
        _dump("budget", cfg["budget"]).rstrip("\n"),
    ]
    if "dtype" in cfg:
        out.append(_dump("dtype", cfg["dtype"]).rstrip("\n"))
    return "\n".join(out) + "\n"


def search_config_from_recipe(
    recipe_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] = ".",
    deep: bool = True,
    **options: Any,
) -> tuple[dict[str, Any], SearchConfig]:
    """(config mapping, validated :class:`SearchConfig`) for a recipe file; raises ConfigError.

    ``options`` are :func:`config_from_recipe`'s (tasks, metric, include_path, ...).
    """
    from mergekit_evo.config import parse_search_config, resolve_paths
    from mergekit_evo.preflight import preflight

    recipe = read_recipe(recipe_path)
    data = config_from_recipe(
        recipe, recipe_dir=Path(recipe_path).parent, out_dir=out_dir, **options
    )
    cfg = resolve_paths(parse_search_config(data), Path(out_dir))
    if deep:
        preflight(cfg)
    return data, cfg
