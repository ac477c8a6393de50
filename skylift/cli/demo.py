"""``skylift demo``: the whole tour of skylift on the embedded local stack, then exit 0."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.table import Table

from skylift.cli.main import cli, console, user_errors

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
    help="Where the HTML report is written.",
)
@user_errors
def demo(example_dir: Path, rows: int, batch_rows: int, workdir: Path) -> None:
    """Start the local stack, then train, promote, score over HTTP, batch-score via S3 and
    SQS, monitor, report and retrain on shifted data; print a summary; stop everything."""
    from skylift.config import load_config
    from skylift.local.stack import LocalStack
    from skylift.local.tour import Tour

    started = time.perf_counter()
    config = load_config(example_dir / "skylift.toml")
    from churn_model.data import generate_churn  # the example project's sample data

    workdir.mkdir(parents=True, exist_ok=True)
    console.print("starting the local stack (moto on 127.0.0.1, API gateway, SQS poller) ...")
    # The stack stops (threads joined, ports closed) when the block ends, on an error or Ctrl-C.
    with LocalStack(config, clocks=False) as stack:
        console.print(f"  AWS endpoint {stack.endpoint_url}   API {stack.api_url}")
        tour = Tour(
            config=config,
            stack=stack,
            s3=stack.client("s3"),
            workdir=workdir.resolve(),
            generate=generate_churn,
            rows=rows,
            batch_rows=batch_rows,
            progress=lambda text: console.print(text, highlight=False, markup=False),
        )
        results = tour.run()
    elapsed = time.perf_counter() - started
    table = Table(title="skylift demo: summary")
    table.add_column("step")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    for result in results:
        table.add_row(result.name, result.outcome, f"{result.seconds:.1f}")
    table.add_row("[bold]total (wall)[/]", "local stack stopped, ports closed", f"{elapsed:.1f}")
    console.print(table)
