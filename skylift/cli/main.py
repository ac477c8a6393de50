"""The root command group, its shared options, and how user errors are shown."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from skylift.config import SkyliftConfig, load_config
from skylift.errors import SkyliftError

__all__ = ["CliState", "cli", "console", "err_console", "pass_state", "user_errors"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    config_path: str | None
    endpoint_url: str | None
    _config: SkyliftConfig | None = field(default=None, repr=False)

    @property
    def config(self) -> SkyliftConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def registry(self) -> Any:
        from skylift.registry import ModelRegistry

        return ModelRegistry.from_config(self.config, endpoint_url=self.endpoint_url)

    def client(self, service: str) -> Any:
        from skylift import aws

        return aws.client(service, endpoint_url=self.endpoint_url)


pass_state = click.make_pass_decorator(CliState)


def user_errors(function: F) -> F:
    """Show a SkyliftError as one readable message and exit 2, never a traceback."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except SkyliftError as exc:
            # The message is plain text: "[model].target" must not be read as rich markup.
            err_console.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    "config_path",
    envvar="SKYLIFT_CONFIG",
    default=None,
    help="Path to skylift.toml (default: $SKYLIFT_CONFIG, else ./skylift.toml).",
)
@click.option(
    "--endpoint-url",
    envvar="AWS_ENDPOINT_URL",
    default=None,
    help="AWS endpoint to use instead of AWS (e.g. a local moto server); "
    "default: $AWS_ENDPOINT_URL.",
)
@click.version_option(package_name="skylift")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, endpoint_url: str | None) -> None:
    """skylift: put a scikit-learn model into production on AWS, from one config file."""
    if endpoint_url:
        # Child boto3 clients (and subprocesses) pick the endpoint up from the environment too.
        os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    ctx.obj = CliState(config_path=config_path, endpoint_url=endpoint_url)
