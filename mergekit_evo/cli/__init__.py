"""The ``mergekit-evo`` command: one click group, one module per sub-command.

Sub-command modules import heavy libraries (torch, MergeKit, lm-eval, Optuna) inside their
functions so that ``mergekit-evo --help`` stays instant.

No command prints a traceback: an exception nobody expected becomes one line (what failed,
and where the details are) and exit code 1; its traceback goes to ``RUN_DIR/error.log`` when
the command names a run folder that exists (:func:`note_run_dir`), else to a temporary file.
``MERGEKIT_EVO_TRACEBACK=1`` lets it through instead (for debugging).
"""

from __future__ import annotations

import datetime
import importlib
import os
import sys
import tempfile
import threading
import traceback
from pathlib import Path

import click

#: set to 1 to see an unexpected exception's traceback on the terminal
TRACEBACK_ENV = "MERGEKIT_EVO_TRACEBACK"
_RUN_DIR_KEY = "mergekit_evo.run_dir"

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


def note_run_dir(path: str | os.PathLike[str] | None) -> None:
    """The run folder this command works in: an unexpected error's traceback goes to its
    ``error.log`` (only if the folder exists by then: a bad config never creates it)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and path is not None:
        ctx.meta[_RUN_DIR_KEY] = Path(path)


def _error_log(run_dir: Path | None, text: str) -> Path:
    """Append ``text`` to ``RUN_DIR/error.log``, or write it to a new temporary file."""
    header = (
        f"--- {datetime.datetime.now().isoformat(timespec='seconds')} pid {os.getpid()}: "
        f"{' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}\n"
    )
    if run_dir is not None and run_dir.is_dir():
        try:
            path = run_dir / "error.log"
            with open(path, "a", encoding="utf-8") as f:
                f.write(header + text)
            return path
        except OSError:
            pass  # a read-only or vanished folder: a temporary file still keeps the details
    fd, name = tempfile.mkstemp(prefix="mergekit-evo-error-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(header + text)
    return Path(name)


def _one_line(err: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` (cut at ``limit`` characters)."""
    msg = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {msg[0]}" if msg else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def report_unexpected(err: BaseException, command: str, run_dir: Path | None) -> None:
    """Print the one line for an unexpected exception and keep its traceback in a log."""
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    try:
        where = str(_error_log(run_dir, text))
    except OSError as e:  # not even a temporary file: say so, still in one line
        where = f"nowhere ({e.strerror}); rerun with {TRACEBACK_ENV}=1 to see it"
    click.echo(
        f"Error: {command} failed unexpectedly: {_one_line(err)} (traceback: {where})",
        err=True,
    )


def _thread_hook(ctx: click.Context) -> object:
    """A background thread's unexpected exception: one line and the log, as in the command."""

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or isinstance(args.exc_value, SystemExit):
            return
        name = getattr(args.thread, "name", "a thread")
        report_unexpected(
            args.exc_value, f"a background thread ({name})", ctx.meta.get(_RUN_DIR_KEY)
        )

    return hook


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

    def invoke(self, ctx: click.Context) -> object:
        """Run the sub-command; an exception it did not expect becomes one line and exit 1."""
        if os.environ.get(TRACEBACK_ENV, "") in ("", "0"):
            threading.excepthook = _thread_hook(ctx)
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own errors and exits print one line (or nothing); so does Ctrl-C
        except Exception as err:
            if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
                raise
            name = ctx.invoked_subcommand or ctx.info_name or "mergekit-evo"
            report_unexpected(err, f"mergekit-evo {name}", ctx.meta.get(_RUN_DIR_KEY))
            ctx.exit(1)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mergekit-evo")
def main() -> None:
    """Evolutionary model merging (PS, DFS, PS+DFS) for MergeKit."""
