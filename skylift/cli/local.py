"""``skylift local up`` (the embedded local stack, in the foreground) and ``skylift local trigger``.

``up`` writes ``.skylift/local.json`` next to the config file: the endpoints, the API key and
the control token. ``trigger`` (another process) reads it and asks the running stack's
control endpoint to fire a schedule now.
"""

from __future__ import annotations

import functools
import json
import signal
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from skylift.cli.main import CliState, cli, console, pass_state

__all__ = ["local"]


def _state_path(state: CliState) -> Path:
    from skylift.local.state import STATE_FILE

    return state.config.project_dir / STATE_FILE


@cli.group()
def local() -> None:
    """The embedded local stack: moto + API gateway + S3->SQS poller + schedules."""


@local.command()
@click.option("--port", default=0, show_default=True, help="API port on 127.0.0.1 (0 = free).")
@click.option("--aws-port", default=0, show_default=True, help="moto port (0 = a free port).")
@click.option("--api-key", default=None, help="API key to require (default: a random one).")
@click.option("--no-clock", is_flag=True, help="Fire schedules on demand only.")
@pass_state
def up(state: CliState, port: int, aws_port: int, api_key: str | None, no_clock: bool) -> None:
    """Run the local stack in the foreground until Ctrl-C."""
    import logging

    from skylift.local.stack import LocalStack

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    config = state.config
    stop = threading.Event()
    # SIGTERM stops as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    state_path = _state_path(state)
    try:
        with LocalStack(
            config, api_key=api_key, port=port, aws_port=aws_port, clocks=not no_clock
        ) as stack:
            try:
                _print_endpoints(stack, state_path)
                # Last: the state file tells scripts (and `local trigger`) the stack is up.
                stack.state().write(state_path)
                while not stop.wait(0.5):
                    pass
            finally:
                console.print("stopping ...")
                state_path.unlink(missing_ok=True)
    except KeyboardInterrupt:
        pass  # Ctrl-C, even during start-up: the stack has already stopped itself
    console.print("local stack stopped")


def _print_endpoints(stack: Any, state_path: Path) -> None:
    say = functools.partial(console.print, soft_wrap=True)  # URLs and keys unbroken
    topology = stack.topology
    say(f"[bold]local AWS (moto)[/]  {stack.endpoint_url}")
    say(f"[bold]scoring API[/]       {stack.api_url}  (x-api-key: {stack.api_key})")
    for route in topology.routes:
        say(f"    {route.method:5} {stack.api_url}{route.path}")
    say(f"[bold]bucket[/]            s3://{topology.bucket}")
    say(
        f"[bold]batch[/]             put files under s3://{topology.bucket}/"
        f"{topology.incoming_prefix} -> SQS {topology.queue_name} -> batch function"
    )
    for schedule in topology.schedules:
        clock = "on its clock and " if schedule.enabled else ""
        say(
            f"[bold]schedule[/]          {schedule.name}: {schedule.expression} "
            f"({clock}`skylift local trigger {schedule.name}`)"
        )
    say(f"state file: {state_path}")
    say("\n[bold]environment[/] (boto3, AWS CLI, curl):")
    for key, value in stack.env.items():
        say(f"  export {key}={value}")
    say(
        f'\n  curl -H "x-api-key: $SKYLIFT_API_KEY" {stack.api_url}/health'
        f"\n  aws s3 ls s3://{topology.bucket}/\n\nCtrl-C stops the stack."
    )


@local.command()
@click.argument("name")
@click.option("--timeout", default=900.0, show_default=True, help="Seconds to wait for the run.")
@pass_state
def trigger(state: CliState, name: str, timeout: float) -> None:
    """Fire schedule NAME (retrain, monitor) on the running `skylift local up` now."""
    from skylift.local.state import CONTROL_TOKEN_HEADER, LocalStackError, StackState

    stack = StackState.read(_state_path(state))
    request = urllib.request.Request(
        f"{stack.control_url}/trigger/{name}",
        method="POST",
        headers={CONTROL_TOKEN_HEADER: stack.control_token},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        message = json.loads(exc.read() or b"{}").get("message", exc.reason)
        raise LocalStackError(f"trigger {name}: HTTP {exc.code}: {message}") from None
    except urllib.error.URLError as exc:
        raise LocalStackError(
            f"trigger {name}: the local stack at {stack.control_url} does not answer "
            f"({exc.reason}); is `skylift local up` still running?"
        ) from None
    console.print(f"{name} ran in {payload['seconds']:.1f} s", markup=False)
    for line in summary_lines(payload.get("result")):
        console.print(line, markup=False)


def summary_lines(result: Any) -> list[str]:
    """A scheduled function's reply (its report's summary) as lines a person reads."""
    if not isinstance(result, dict):
        return [json.dumps(result)]
    lines = []
    if "max_psi" in result:  # the monitor
        drifted = result.get("drifted_features") or []
        psi = result.get("max_psi")
        lines.append(
            ("max PSI " + (f"{psi:.3f}" if isinstance(psi, int | float) else "n/a"))
            + (f"; drifted: {', '.join(drifted)}" if drifted else "; no feature drifted")
        )
        if drifted:
            sent = result.get("drift_event_published")
            lines.append("drift event " + ("published" if sent else "NOT published"))
        live = result.get("live_metrics") or {}
        shown = ", ".join(
            f"{k} {v:.4f}" for k, v in live.items() if k != "rows" and isinstance(v, float)
        )
        lines.append(
            f"live metrics on {live.get('rows')} labelled rows: {shown}"
            if shown
            else "live metrics: no labels joined in the window"
        )
    elif "promoted" in result:  # the retrain
        verdict = "promoted" if result.get("promoted") else "not promoted"
        lines.append(f"{result.get('status')}: challenger {verdict}: {result.get('reason')}")
    else:  # another handler's reply: shown as it is
        return [json.dumps(result, indent=2, default=str)]
    if result.get("report_key"):
        lines.append(f"report: {result['report_key']}")
    return lines
