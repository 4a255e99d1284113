"""``mergekit-evo tasks``: list the shipped lm-eval tasks, or print their folder for lm-eval.

Only the task registry is imported (no lm-eval, no torch), so this answers instantly.
"""

from __future__ import annotations

import json

import click


@click.command(name="tasks")
@click.option(
    "--include-path",
    "include_path",
    is_flag=True,
    help="Print only the folder to pass to lm-eval (`lm_eval --include_path`, "
    "`TaskManager(include_path=...)`).",
)
@click.option(
    "--split",
    type=click.Choice(["test", "search", "heldout"]),
    default=None,
    help="Only tasks of this split.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def tasks_command(include_path: bool, split: str | None, as_json: bool) -> None:
    """List the shipped GSM8K/MGSM tasks: name, split, size, description."""
    from mergekit_evo.fitness.registry import SHIPPED_TASKS, TASKS_DIR

    if include_path:
        click.echo(str(TASKS_DIR))
        return
    rows = [t for t in SHIPPED_TASKS.values() if split is None or t.split == split]
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": t.name,
                        "split": t.split,
                        "size": t.size,
                        "metric": t.default_metric,
                        "description": t.description,
                    }
                    for t in rows
                ],
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    width = max(len(t.name) for t in rows) if rows else 4
    click.echo(f"{'name':<{width}}  {'split':<7}  {'size':>4}  description")
    for t in rows:
        click.echo(f"{t.name:<{width}}  {t.split:<7}  {t.size:>4}  {t.description}")
    click.echo(f"\n{len(rows)} tasks in {TASKS_DIR} (searchable: split 'search' only)")
