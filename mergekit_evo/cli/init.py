"""``mergekit-evo init --from-recipe RECIPE.yml``: a commented search config from a recipe."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

#: the options ``init`` and ``search`` share for a search started from a recipe
recipe_options = [
    click.option(
        "--task",
        "tasks",
        multiple=True,
        help="Fitness lm-eval task (repeat for several; default evo_gsm8k_search).",
    ),
    click.option("--metric", default=None, help="lm-eval 'metric,filter' key for every task."),
    click.option(
        "--require-language",
        default=None,
        help="Count an answer only if written in this language (e.g. ja; the paper's rule).",
    ),
    click.option(
        "--include-path",
        "include_path",
        multiple=True,
        type=click.Path(exists=True, file_okay=False),
        help="Folder of extra lm-eval task YAML (repeatable).",
    ),
    click.option("--limit", type=float, default=None, help="Questions per task (or a fraction)."),
]


def with_recipe_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add the --from-recipe search options (shared by ``init`` and ``search``)."""
    for opt in reversed(recipe_options):
        f = opt(f)
    return f


def recipe_kwargs(
    tasks: tuple[str, ...],
    metric: str | None,
    require_language: str | None,
    include_path: tuple[str, ...],
    limit: float | None,
) -> dict[str, object]:
    """Click's values -> :func:`mergekit_evo.recipe_import.config_from_recipe` options."""
    lim: int | float | None = limit
    if limit is not None and limit >= 1 and float(limit).is_integer():
        lim = int(limit)
    return {
        "tasks": list(tasks) or None,
        "metric": metric,
        "require_language": require_language,
        "include_path": list(include_path),
        "limit": lim,
    }


@click.command("init")
@click.option(
    "--from-recipe",
    "recipe",
    required=True,
    type=click.Path(dir_okay=False),
    help="A MergeKit recipe YAML (as published with a merged model).",
)
@with_recipe_options
@click.option("--max-trials", type=int, default=None, help="budget.max_trials (default 100).")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write here, not stdout."
)
def init_command(
    recipe: str,
    tasks: tuple[str, ...],
    metric: str | None,
    require_language: str | None,
    include_path: tuple[str, ...],
    limit: float | None,
    max_trials: int | None,
    output: str | None,
) -> None:
    """Print a complete, commented search config whose trial 0 is RECIPE."""
    from mergekit_evo.config import ConfigError
    from mergekit_evo.recipe_import import (
        config_text,
        dfs_config_text,
        passthrough_path,
        read_recipe,
        search_config_from_recipe,
    )
    from mergekit_evo.space.template import RecipeSpace

    out_dir = Path(output).parent if output else Path(".")
    try:
        data, cfg = search_config_from_recipe(
            recipe,
            out_dir=out_dir,
            max_trials=max_trials,
            **recipe_kwargs(tasks, metric, require_language, include_path, limit),
        )
        if cfg.mode == "dfs":  # a passthrough frankenmerge: its layer path starts DFS
            lost = passthrough_path(read_recipe(recipe))[2]
            text = dfs_config_text(data, recipe, lost)
            what = f"DFS from its {len(data['dfs']['start_path'])}-layer path"
        else:
            evolved = RecipeSpace.from_config(cfg).vector.names
            text = config_text(data, recipe, evolved)
            what = f"{len(evolved)} numbers evolved"
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    if output:
        Path(output).write_text(text)
        click.echo(f"wrote {output}: {what} from {recipe}", err=True)
    else:
        click.echo(text, nl=False)
