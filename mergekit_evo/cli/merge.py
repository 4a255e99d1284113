"""``mergekit-evo merge``: MergeKit's ``mergekit-yaml`` with dfs/ps_dfs installed explicitly."""

from __future__ import annotations

import click


def _build() -> click.Command:
    from mergekit.options import MergeOptions, PrettyPrintHelp, add_merge_options

    @click.command("merge", cls=PrettyPrintHelp)
    @click.argument("config_file", type=click.Path(exists=True, dir_okay=False))
    @click.argument("out_path", type=click.Path())
    @add_merge_options
    def merge(merge_options: MergeOptions, config_file: str, out_path: str) -> None:
        """Run a MergeKit YAML (any method, including dfs and ps_dfs) into OUT_PATH."""
        from mergekit_evo.methods import RecipeError, merge_recipe

        merge_options.apply_global_options()
        try:
            merge_recipe(config_file, out_path, options=merge_options)
        except RecipeError as exc:
            raise click.ClickException(f"{config_file}: {exc}") from None
        click.echo(f"wrote {out_path}")

    return merge


class _Deferred(click.Command):
    """Builds the real command (which imports MergeKit) only when it is invoked or helped."""

    def __init__(self) -> None:
        super().__init__("merge", help="Run a MergeKit YAML (dfs and ps_dfs included).")
        self._real: click.Command | None = None

    def _get(self) -> click.Command:
        if self._real is None:
            from mergekit_evo.methods import ensure_installed

            ensure_installed()
            self._real = _build()
        return self._real

    def main(self, *args, **kwargs):  # noqa: D102
        return self._get().main(*args, **kwargs)

    def make_context(self, info_name, args, parent=None, **extra):  # noqa: D102
        return self._get().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):  # noqa: D102
        return self._get().invoke(ctx)

    def get_short_help_str(self, limit: int = 45) -> str:  # noqa: D102
        return "Run a MergeKit YAML (dfs and ps_dfs included)."


merge_command = _Deferred()
