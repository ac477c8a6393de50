"""``skylift invoke FUNCTION --event FILE``: run a Lambda handler in this process, print its reply.

Lambda cannot run inside moto, so this is how a handler meets a real event locally: the
function's module (``functions/<name>/app.py``) is imported with the config and endpoint of
this command line, its module-level ``handler`` gets the event and a minimal Lambda context.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from skylift.cli.main import CliState, cli, console, pass_state
from skylift.errors import SkyliftError
from skylift.local.environment import function_environment

FUNCTIONS = ("score", "batch", "retrain", "monitor")


class InvokeError(SkyliftError):
    """The event file or the function cannot be used."""


@dataclass
class LocalLambdaContext:
    """The attributes handlers and Powertools read from Lambda's context object."""

    function_name: str
    memory_limit_in_mb: int = 1024
    timeout_seconds: int = 30
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        )
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def read_event(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvokeError(f"{path}: cannot read the event file ({exc.strerror})") from exc
    try:
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvokeError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    if not isinstance(event, dict):
        raise InvokeError(f"{path}: an event must be a JSON object, got {type(event).__name__}")
    return event


def load_handler(function: str) -> Any:
    module_name = f"functions.{function}.app"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise InvokeError(
                f"function {function!r} has no handler module ({module_name} not found)"
            ) from exc
        raise
    handler = getattr(module, "handler", None)
    if handler is None:
        raise InvokeError(f"{module_name} defines no 'handler'")
    return handler


@cli.command()
@click.argument("function", type=click.Choice(FUNCTIONS))
@click.option(
    "--event",
    "event_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="JSON file holding the event (see events/).",
)
@click.option("--raw", is_flag=True, help="Print the reply as it is, without decoding the body.")
@pass_state
def invoke(state: CliState, function: str, event_path: Path, raw: bool) -> None:
    """Run FUNCTION's handler in this process on the event in a file and print the reply.

    Exits 1 when the reply is an HTTP error (status 400 or more), as `curl --fail` does, so
    scripts notice; 2 for a problem with the event file or the config. A bare S3 notification
    given to the batch function is delivered as S3 -> SQS -> Lambda would (in an SQS message).
    """
    event = read_event(event_path)
    config = state.config  # fail early, naming the file, if the config is wrong
    if function == "batch":
        event = _as_sqs_event(event, event_path, config)
    # The handler module loads its config from the environment, as in Lambda; set for the
    # call only (the CLI also runs in-process).
    variables: dict[str, str] = {}
    if config.config_path is not None:
        variables["SKYLIFT_CONFIG"] = str(config.config_path)
    if function == "score" and config.api.capture_stream:
        variables["SKYLIFT_API__CAPTURE_STREAM"] = os.environ.get(
            "SKYLIFT_API__CAPTURE_STREAM", config.api.capture_stream
        )
    # Logs and EMF metrics go to stderr, as they would go to CloudWatch: stdout is the reply.
    with function_environment(variables), contextlib.redirect_stdout(sys.stderr):
        handler = load_handler(function)
        context = LocalLambdaContext(function_name=f"skylift-{function}")
        reply = handler(event, context)
        # This process ends now, unlike a Lambda environment: let background work (the score
        # function's capture) finish first.
        service = getattr(sys.modules.get(f"functions.{function}.app"), "service", None)
        if service is not None and hasattr(service, "flush"):
            service.flush(timeout=10)
    if raw or not isinstance(reply, dict) or "statusCode" not in reply:
        click.echo(json.dumps(reply, indent=2, default=str))
        return
    body = reply.get("body")
    try:
        shown = json.loads(body) if isinstance(body, str) and body else body
    except json.JSONDecodeError:
        shown = body
    status = int(reply["statusCode"])
    console.print(f"status [bold]{status}[/]", style="green" if status < 400 else "red")
    headers = dict(reply.get("headers") or {})
    for name, values in (reply.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(str(v) for v in values)
    click.echo(json.dumps({"headers": headers, "body": shown}, indent=2))
    if status >= 400:
        raise SystemExit(1)


def _as_sqs_event(event: dict[str, Any], path: Path, config: Any) -> dict[str, Any]:
    """The batch function takes SQS events; a pasted S3 notification is wrapped as the
    bucket's notification to the queue would deliver it."""
    from skylift.local.poller import is_s3_notification, sqs_event_for_s3_notification
    from skylift.local.provision import names_for
    from skylift.topology import describe

    records = event.get("Records")
    if (
        isinstance(records, list)
        and records
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)
    ):
        return event
    if is_s3_notification(event):
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        names = names_for(describe(config))
        return sqs_event_for_s3_notification(event, names.queue_arn(region, names.queue), region)
    raise InvokeError(
        f"{path}: the batch function takes an SQS event (Records with eventSource aws:sqs, "
        "see events/sqs_s3_object_created.json) or an S3 notification (eventSource aws:s3)"
    )
