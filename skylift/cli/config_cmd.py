"""``skylift config check`` and ``skylift config reference``."""

from __future__ import annotations

import json

import click

from skylift.cli.main import CliState, cli, console, pass_state
from skylift.config import config_reference


@cli.group("config")
def config_group() -> None:
    """Validate the config file, or print the reference of every field."""


@config_group.command()
@pass_state
def check(state: CliState) -> None:
    """Validate skylift.toml (with environment overrides), import the training entry point,
    and print the resolved values."""
    from skylift.training import load_entry_point

    config = state.config
    load_entry_point(config)  # a config that cannot train is not valid
    console.print(f"{config.config_path}: valid (entry point {config.model.entry_point} imports)")
    click.echo(json.dumps(config.model_dump(mode="json"), indent=2))


@config_group.command()
def reference() -> None:
    """Print every config field, its default and its meaning (Markdown)."""
    click.echo(config_reference())
