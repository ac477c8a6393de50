"""``skylift demo``: the whole tour of skylift on the embedded local stack, then exit 0."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from skylift.cli.main import cli, fit_to_output

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "churn"


@cli.command()
@click.option(
    "--example-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=EXAMPLE_DIR,
    show_default=True,
    help="The example project (its skylift.toml and model package).",
)
@click.option("--rows", default=5000, show_default=True, help="Training rows to generate.")
@click.option("--batch-rows", default=20_000, show_default=True, help="Rows in the batch file.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".skylift") / "demo",
    show_default=True,
    help="Where the HTML report and the functions' log are written.",
)
@click.option(
    "--verbose", "-v", is_flag=True, help="Show the functions' logs and metrics here too."
)
def demo(example_dir: Path, rows: int, batch_rows: int, workdir: Path, verbose: bool) -> None:
    """Start the local stack, then train, promote, score over HTTP, batch-score via S3 and
    SQS, monitor, report, and answer drift with a retrain; print a summary; stop everything.

    The functions' own output (JSON logs, EMF metrics, warnings) goes to
    WORKDIR/functions.log unless --verbose.
    """
    from skylift.config import load_config

    started = time.perf_counter()
    # The drift rule is enabled here (whatever the example's file says) to show drift answered.
    config = load_config(example_dir / "skylift.toml", monitor={"retrain_on_drift": True})
    from churn_model.data import generate_churn  # the example project's sample data

    workdir.mkdir(parents=True, exist_ok=True)
    # Bound to this command's stdout before the functions' output is redirected.
    out = Console(file=sys.stdout, highlight=False)
    fit_to_output(out)
    log_path = workdir.resolve() / "functions.log"
    with contextlib.ExitStack() as quiet:
        if not verbose:
            log = quiet.enter_context(log_path.open("w", encoding="utf-8"))
            quiet.enter_context(contextlib.redirect_stdout(log))
            quiet.enter_context(contextlib.redirect_stderr(log))
        results = _tour(config, out, generate_churn, rows, batch_rows, workdir)
    elapsed = time.perf_counter() - started
    table = Table(title="skylift demo: summary")
    table.add_column("step")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    for result in results:
        table.add_row(result.name, result.outcome, f"{result.seconds:.1f}")
    table.add_row("[bold]total (wall)[/]", "local stack stopped, ports closed", f"{elapsed:.1f}")
    out.print(table)
    if not verbose:
        out.print(f"functions' logs and metrics: {log_path} (or run with -v)")


def _tour(
    config: Any, out: Console, generate: Any, rows: int, batch_rows: int, workdir: Path
) -> list[Any]:
    from skylift.local.stack import LocalStack
    from skylift.local.tour import Tour

    out.print("starting the local stack (moto on 127.0.0.1, API gateway, SQS poller) ...")
    # The stack stops (threads joined, ports closed) when the block ends, on an error or Ctrl-C.
    with LocalStack(config, clocks=False) as stack:
        out.print(f"  AWS endpoint {stack.endpoint_url}   API {stack.api_url}")
        tour = Tour(
            config=config,
            stack=stack,
            s3=stack.client("s3"),
            workdir=workdir.resolve(),
            generate=generate,
            rows=rows,
            batch_rows=batch_rows,
            progress=lambda text: out.print(text, highlight=False, markup=False),
        )
        return tour.run()
