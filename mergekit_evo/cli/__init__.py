"""The ``mergekit-evo`` command: one click group, one module per sub-command.

Sub-command modules import heavy libraries (torch, MergeKit, lm-eval, Optuna) inside their
functions so that ``mergekit-evo --help`` stays instant.
"""

from __future__ import annotations

import importlib

import click

# name -> module under mergekit_evo.cli that defines a click command called ``command``
_COMMANDS = {
    "merge": "merge",
    "eval": "eval",
    "init": "init",
    "tasks": "tasks",
    "search": "search",
    "status": "status",
    "best": "status",
    "report": "report",
    "worker": "search",
    "zoo": "zoo",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in sorted(_COMMANDS) if self.get_command(ctx, name) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module_name = _COMMANDS.get(name)
        if module_name is None:
            return None
        qualified = f"mergekit_evo.cli.{module_name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name != qualified:  # a missing dependency, not a missing command
                raise
            return None
        return getattr(module, f"{name}_command", None)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mergekit-evo")
def main() -> None:
    """Evolutionary model merging (PS, DFS, PS+DFS) for MergeKit."""
