"""Shared command-line plumbing for ``b2b-train`` and ``b2b-stream``.

* :class:`LazyGroup` imports a sub-command's module only when that command runs, so ``--help`` is
  fast and never imports torch-tensorrt, av or mediapipe.
* :func:`run_main` turns a :class:`~b2b_train.errors.B2BError` (and Ctrl-C) into one red line on
  stderr and a non-zero exit, instead of a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from .errors import B2BError

__all__ = ["LazyGroup", "run_main", "fail", "console", "err_console", "overrides_argument"]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class LazyGroup(click.Group):
    """A click group whose sub-commands are ``"module:attribute"`` strings resolved on first use."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            module_name, attr = self.lazy_commands[name].split(":")
            module = importlib.import_module(module_name)
            return getattr(module, attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        # Short help without importing each module: read the first docstring line lazily only when
        # the module is already imported, else show the declared summary.
        rows = []
        for name in self.list_commands(ctx):
            summary = LAZY_SUMMARIES.get(self.name, {}).get(name)
            if summary is None:
                cmd = self.get_command(ctx, name)
                if cmd is None or cmd.hidden:
                    continue
                summary = cmd.get_short_help_str(limit=formatter.width - 6 - len(name))
            rows.append((name, summary))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


# One-line summaries shown by `--help` of each group without importing the command modules.
LAZY_SUMMARIES: dict[str, dict[str, str]] = {}


def console():
    from rich.console import Console

    return Console(stderr=False)


def err_console():
    from rich.console import Console

    return Console(stderr=True)


def fail(message: str, code: int = EXIT_USER_ERROR) -> "NoReturn":  # noqa: F821
    """Print one clear error line and exit non-zero."""
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


def run_main(group: click.Group, argv=None) -> None:
    """Run a click group; B2BError -> one line + exit 2; Ctrl-C -> exit 130."""
    try:
        group.main(args=argv, standalone_mode=False, prog_name=group.name)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except B2BError as e:
        if os.environ.get("B2B_TRACEBACK"):
            raise
        fail(str(e))
    except BrokenPipeError:
        sys.exit(1)


def overrides_argument(f):
    """``KEY=VALUE …`` trailing arguments that override config fields."""
    return click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")(f)
