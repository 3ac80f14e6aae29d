"""``b2b-train config``: list presets and print a resolved config."""

from __future__ import annotations

import importlib

import click

from ..cliutil import overrides_argument
from ..config import dump_yaml, list_presets, load_config

# kind -> "module:ConfigClass"
KINDS = {
    "translator": "b2b_train.trainer:TranslatorConfig",
    "deblurrer": "b2b_train.deblur_trainer:DeblurrerConfig",
    "known": "b2b_train.blur:KnownBlurConfig",
}


def _config_class(kind: str):
    module, attr = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), attr)


@click.group()
def config():
    """Show config presets and the config a command would run with.

    \b
    Examples:
      b2b-train config list
      b2b-train config show translator paper train.batch_size=4
    """


@config.command("list")
def list_cmd():
    """List the presets of every config kind."""
    for kind in KINDS:
        names = list_presets(kind)
        click.echo(f"{kind}: {', '.join(names) if names else '(none)'}")


@config.command("show")
@click.argument("kind", type=click.Choice(sorted(KINDS)))
@click.argument("preset")
@overrides_argument
def show(kind, preset, overrides):
    """Print PRESET of KIND (a name or a .yaml path) with KEY=VALUE overrides applied, as YAML.

    \b
    Example:
      b2b-train config show translator cpu-quick schedule.iters=200
    """
    cfg = load_config(_config_class(kind), preset, overrides, kind=kind)
    click.echo(dump_yaml(cfg), nl=False)
