"""``mergekit-evo search`` and ``mergekit-evo worker``: run, resume or join a search."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from mergekit_evo.cli import note_run_dir
from mergekit_evo.cli.init import recipe_kwargs, with_recipe_options

if TYPE_CHECKING:
    from mergekit_evo.config import SearchConfig
    from mergekit_evo.search.fleet.processes import Fleet


def _load(config: str, **overrides: Any) -> SearchConfig:
    from mergekit_evo.config import ConfigError, load_search_config
    from mergekit_evo.search.run.runner import apply_overrides

    try:
        return apply_overrides(load_search_config(config), **overrides)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


def _quiet(verbose: bool = False) -> None:
    """Libraries' own logs and bars off, unless ``-v`` (see :mod:`mergekit_evo.quiet`)."""
    if verbose:
        return
    from mergekit_evo.quiet import quiet_libraries

    quiet_libraries()


def _fleet(gpus: str | None, workers: int | None) -> Fleet | None:
    """``--gpus``/``--workers``: the local worker processes; pins this one to its GPU."""
    from mergekit_evo.search.fleet.processes import Fleet, die_with_parent, resolve_gpus

    die_with_parent()  # a no-op unless a run started this process as one of its workers
    if gpus is not None and workers is not None:
        raise click.UsageError("give --gpus or --workers, not both")
    if gpus is not None:
        try:
            fleet = Fleet.on_gpus(resolve_gpus(gpus))
        except ValueError as e:
            raise click.UsageError(str(e)) from None
        fleet.pin_self()  # before anything initialises CUDA
        return fleet
    if workers is not None:
        if workers < 1:
            raise click.UsageError("--workers must be at least 1")
        return Fleet.on_cpu(workers)
    return None


def _run(
    cfg: SearchConfig,
    out: str,
    save_champion: bool,
    role: str,
    quiet: bool,
    verbose: bool,
    fleet: Fleet | None = None,
) -> None:
    from mergekit_evo.cli.progress import Progress, choose_mode
    from mergekit_evo.config import ConfigError
    from mergekit_evo.search.run.runner import run_search
    from mergekit_evo.search.rundir.lock import RunDirBusy
    from mergekit_evo.search.scoring.failures import SearchFailed

    log = Progress(choose_mode(quiet), cfg.budget.max_trials, verbose=verbose)
    if fleet is not None:
        fleet.log = log  # the workers' lines, prefixed with their GPU
    try:
        res = run_search(cfg, out, save_champion=save_champion, role=role, log=log, fleet=fleet)
    except (ConfigError, SearchFailed, RunDirBusy) as e:
        raise click.ClickException(str(e)) from None
    except Exception as e:
        from mergekit_evo.fitness import FitnessError

        if isinstance(e, FitnessError):
            raise click.ClickException(f"fitness: {e}") from None
        raise
    finally:
        log.close()
    if role == "worker":
        stops = "; ".join(f"{k}: {v}" for k, v in res.metrics["stop_reason"].items())
        if not quiet:
            click.echo(f"worker done ({stops})")
        return
    from mergekit_evo.report.summary import summary_table

    click.echo("")
    click.echo(summary_table(res.metrics))
    click.echo(f"best recipe: {res.rundir / 'best.yml'}  (report: {res.rundir / 'report.html'})")


_common = [
    click.option("--max-trials", type=int, default=None, help="Override budget.max_trials."),
    click.option("--device", default=None, help="cpu, cuda, cuda:N (overrides the config)."),
    click.option(
        "--storage",
        default=None,
        help="Optuna storage: a database URL or a journal file (default RUN_DIR/study.journal).",
    ),
    click.option("--seed", type=int, default=None, help="Override optimizer.seed."),
    click.option(
        "--trust-remote-code",
        is_flag=True,
        help="Run the Python code model folders ship (off by default: only for folders you trust).",
    ),
    click.option(
        "--save-champion", is_flag=True, help="Keep the champion's weights in RUN_DIR/champion."
    ),
]
_output = [
    click.option("-q", "--quiet", is_flag=True, help="Only the final table and errors."),
    click.option(
        "-v", "--verbose", is_flag=True, help="Every trial line, and the libraries' own logs."
    ),
]


_scale = [
    click.option(
        "--gpus",
        default=None,
        help="One worker process per GPU on this host: '0,1,...' or 'all' (sets device cuda).",
    ),
    click.option(
        "--workers", type=int, default=None, help="N worker processes on this host (CPU)."
    ),
]


def _with_common(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(_common + _output):
        f = opt(f)
    return f


def _with_scale(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(_scale):
        f = opt(f)
    return f


def _device(device: str | None, gpus: str | None) -> str | None:
    """With --gpus each process sees one GPU, as ``cuda``."""
    if gpus is None:
        return device
    if device is not None and not device.startswith("cuda"):
        raise click.UsageError(f"--gpus runs on GPUs; --device {device} contradicts it")
    return "cuda"


@click.command("search")
@click.argument("config", type=click.Path(dir_okay=False), required=False)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="RUN_DIR.")
@click.option(
    "--from-recipe",
    "recipe",
    type=click.Path(dir_okay=False),
    default=None,
    help="Start from this MergeKit recipe (trial 0 is the recipe) instead of CONFIG.",
)
@with_recipe_options
@_with_common
@_with_scale
def search_command(
    config: str | None,
    out: str,
    recipe: str | None,
    tasks: tuple[str, ...],
    metric: str | None,
    require_language: str | None,
    include_path: tuple[str, ...],
    limit: float | None,
    max_trials: int | None,
    device: str | None,
    storage: str | None,
    seed: int | None,
    trust_remote_code: bool,
    save_champion: bool,
    quiet: bool,
    verbose: bool,
    gpus: str | None,
    workers: int | None,
) -> None:
    """Evolve a merge recipe from CONFIG (or --from-recipe); the same command again resumes.

    With --gpus (or --workers) one worker process per GPU shares the run's study.
    """
    note_run_dir(out)
    fleet = _fleet(gpus, workers)
    device = _device(device, gpus)
    overrides = dict(
        max_trials=max_trials,
        device=device,
        storage=storage,
        seed=seed,
        trust_remote_code=trust_remote_code,
    )
    _check_source(config, recipe, tasks, metric, require_language, include_path, limit)
    _quiet(verbose)
    kwargs = recipe_kwargs(tasks, metric, require_language, include_path, limit)
    cfg = _load_source(config, recipe, kwargs, overrides)
    _run(cfg, out, save_champion, "search", quiet, verbose, fleet)


def _check_source(
    config: str | None,
    recipe: str | None,
    tasks: tuple[str, ...],
    metric: str | None,
    require_language: str | None,
    include_path: tuple[str, ...],
    limit: float | None,
) -> None:
    """CONFIG or --from-recipe (with its --task options), not both."""
    if (config is None) == (recipe is None):
        raise click.UsageError("give either CONFIG or --from-recipe RECIPE.yml (not both)")
    if config is None and not tasks:
        raise click.UsageError("--from-recipe needs --task NAME (the fitness task)")
    if config is not None and (
        tasks or metric or require_language or include_path or limit is not None
    ):
        raise click.UsageError(
            "--task/--metric/--require-language/--include-path/--limit go with --from-recipe"
        )


def _load_source(
    config: str | None,
    recipe: str | None,
    kwargs: dict[str, Any],
    overrides: dict[str, Any],
    quiet: bool = False,
) -> SearchConfig:
    """The search config from CONFIG or from --from-recipe (``_check_source`` ran first)."""
    if recipe is not None:
        return _from_recipe(recipe, kwargs, overrides, quiet=quiet)
    assert config is not None
    return _load(config, **overrides)


def _from_recipe(
    recipe: str, kwargs: dict[str, Any], overrides: dict[str, Any], quiet: bool = False
) -> SearchConfig:
    from mergekit_evo.config import ConfigError
    from mergekit_evo.recipe_import import search_config_from_recipe
    from mergekit_evo.search.run.runner import apply_overrides

    try:
        data, cfg = search_config_from_recipe(recipe, **kwargs)
        if cfg.mode == "dfs" and not quiet:  # a passthrough: its layer path starts DFS
            from mergekit_evo.recipe_import import passthrough_path, read_recipe

            n = len(data["dfs"]["start_path"])
            click.echo(f"{recipe}: passthrough, so a DFS search from its {n}-layer path")
            for item in passthrough_path(read_recipe(recipe))[2]:
                click.echo(f"  not kept: {item}")
        return apply_overrides(cfg, **overrides)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


@click.command("worker")
@click.argument("config", type=click.Path(dir_okay=False), required=False)
@click.option(
    "--from-recipe",
    "recipe",
    type=click.Path(dir_okay=False),
    default=None,
    help="The recipe the search was started from (with the same --task options) instead of CONFIG.",
)
@with_recipe_options
@click.option(
    "--storage",
    required=True,
    help="The search's storage: a database URL (PostgreSQL across hosts) or its journal file.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Local RUN_DIR for this worker's trial YAMLs and scratch.",
)
@click.option("--max-trials", type=int, default=None, help="Override budget.max_trials.")
@click.option("--device", default=None, help="cpu, cuda, cuda:N.")
@_output[0]
@_output[1]
@_with_scale
def worker_command(
    config: str | None,
    recipe: str | None,
    tasks: tuple[str, ...],
    metric: str | None,
    require_language: str | None,
    include_path: tuple[str, ...],
    limit: float | None,
    storage: str,
    out: str,
    max_trials: int | None,
    device: str | None,
    quiet: bool,
    verbose: bool,
    gpus: str | None,
    workers: int | None,
) -> None:
    """Join a search shared through --storage: ask, merge, score, tell until it stops.

    CONFIG is the search's config; a search started with --from-recipe is joined with the same
    --from-recipe and --task options.  With --gpus (or --workers) one worker process per GPU of
    this host joins.
    """
    note_run_dir(out)
    fleet = _fleet(gpus, workers)
    device = _device(device, gpus)
    _check_source(config, recipe, tasks, metric, require_language, include_path, limit)
    _quiet(verbose)
    overrides = dict(max_trials=max_trials, device=device, storage=storage)
    kwargs = recipe_kwargs(tasks, metric, require_language, include_path, limit)
    cfg = _load_source(config, recipe, kwargs, overrides, quiet=True)
    _run(cfg, out, False, "worker", quiet, verbose, fleet)
