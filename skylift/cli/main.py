"""The root command group, its shared options, and how user errors are shown."""

from __future__ import annotations

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

__all__ = [
    "CliState",
    "SkyliftGroup",
    "cli",
    "console",
    "err_console",
    "error_message",
    "pass_state",
    "share_global_options",
    "user_errors",
]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
# Piped or captured output is read by scripts and people alike: lines are not wrapped and
# tables not cut to an 80-column guess ("accura…").
PIPED_WIDTH = 1000


def fit_to_output(*consoles: Console) -> None:
    """Piped output: no wrapping, tables at full width."""
    for output in consoles or (console, err_console):
        if not output.is_terminal:
            output.width = PIPED_WIDTH
            output.soft_wrap = True


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

        # A service's own endpoint wins, as in botocore: the local stack sends EventBridge
        # PutEvents to its event bus (AWS_ENDPOINT_URL_EVENTBRIDGE), everything else to moto.
        service_endpoint = os.environ.get(f"AWS_ENDPOINT_URL_{_service_id(service)}")
        return aws.client(service, endpoint_url=service_endpoint or self.endpoint_url)


pass_state = click.make_pass_decorator(CliState)


def _service_id(service: str) -> str:
    """The suffix botocore reads a service's own endpoint from (``events`` -> EVENTBRIDGE)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    return str(model.service_id).replace(" ", "_").upper()


def user_errors(function: F) -> F:
    """Kept for commands written before the error boundary; errors are shown by
    :class:`SkyliftGroup` now, so this changes nothing."""
    return function


# ---- the error boundary ------------------------------------------------------------------------


def _aws_message(exc: BaseException) -> str | None:
    """A one-line message for an AWS failure a user can fix, or None for anything else."""
    from botocore import exceptions as boto

    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
        return (
            f"no usable AWS credentials ({exc}): set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, or pass --endpoint-url for a local stack"
        )
    if isinstance(exc, boto.NoRegionError):
        return "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)"
    if isinstance(exc, boto.EndpointConnectionError | boto.ConnectTimeoutError):
        endpoint = exc.kwargs.get("endpoint_url", "the AWS endpoint")
        return f"cannot connect to {endpoint}: is it up? (check --endpoint-url / AWS_ENDPOINT_URL)"
    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        if code == "NoSuchBucket":
            bucket = error.get("BucketName") or "the bucket"
            return f"bucket {bucket} does not exist: check [storage].bucket or deploy the stack"
        if code in ("AccessDenied", "AccessDeniedException", "403", "Forbidden"):
            return f"access denied by AWS ({exc.operation_name}): {error.get('Message', code)}"
        if code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId"):
            return f"AWS rejected the credentials ({code}): refresh them and retry"
        return f"AWS {exc.operation_name} failed: {code}: {error.get('Message', '')}".rstrip(": ")
    return None


def error_message(exc: BaseException) -> str | None:
    """The one line to show for ``exc`` (or what caused it), None when it is a bug."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SkyliftError):
            return str(current)
        message = _aws_message(current)
        if message is not None:
            return message
        current = current.__cause__
    return None


class SkyliftGroup(click.Group):
    """The root group: the one place that turns a user's mistake or an unreachable AWS into
    one line on stderr and exit status 2. Anything else is a bug and keeps its traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            message = error_message(exc)
            if message is None:
                raise
            # Plain text: "[model].target" must not be read as rich markup.
            err_console.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)
            sys.exit(2)


# ---- options every command takes (before or after the command's name) -----------------------


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        state = ctx.find_object(CliState)
        if state is not None:
            state.config_path = value
            state._config = None


def _set_endpoint(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        state = ctx.find_object(CliState)
        if state is not None:
            state.endpoint_url = value
        use_endpoint(ctx, value)


def use_endpoint(ctx: click.Context, endpoint_url: str) -> None:
    """Point every boto3 client (and subprocess) of this run at ``endpoint_url``, through the
    environment, and put the environment back when the run ends: the CLI is also called
    in-process (tests, ``CliRunner``), where a leaked endpoint would outlive its server."""
    root = ctx.find_root()
    if not root.meta.get("skylift.endpoint_restore"):
        previous = os.environ.get("AWS_ENDPOINT_URL")

        def restore() -> None:
            if previous is None:
                os.environ.pop("AWS_ENDPOINT_URL", None)
            else:
                os.environ["AWS_ENDPOINT_URL"] = previous

        root.call_on_close(restore)
        root.meta["skylift.endpoint_restore"] = True
    os.environ["AWS_ENDPOINT_URL"] = endpoint_url


def share_global_options(command: click.Command) -> None:
    """Let ``-c/--config`` and ``--endpoint-url`` follow any subcommand too
    (``skylift train -c x.toml``), recursively."""
    if command is not cli:
        taken = {name for param in command.params for name in param.opts}
        if "--config" not in taken and "-c" not in taken:
            command.params.append(
                click.Option(
                    ["--config", "-c"],
                    expose_value=False,
                    callback=_set_config,
                    help="Path to skylift.toml (as before the command).",
                )
            )
        if "--endpoint-url" not in taken:
            command.params.append(
                click.Option(
                    ["--endpoint-url"],
                    expose_value=False,
                    callback=_set_endpoint,
                    help="AWS endpoint (as before the command).",
                )
            )
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            share_global_options(sub)


@click.group(cls=SkyliftGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    fit_to_output()
    if endpoint_url:
        use_endpoint(ctx, endpoint_url)
    ctx.obj = CliState(config_path=config_path, endpoint_url=endpoint_url)
