"""``skylift demo``: the tour of skylift on the embedded local stack."""

from __future__ import annotations

import sys
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
@click.option("--rows", default=5000, show_default=True, help="Rows of churn data to generate.")
@user_errors
def demo(example_dir: Path, rows: int) -> None:
    """Train the churn example and register it on an embedded local S3 (moto), then exit."""
    from skylift import aws
    from skylift.config import load_config
    from skylift.local.server import local_aws
    from skylift.registry import ModelRegistry
    from skylift.training import train_and_register

    started = time.perf_counter()
    config = load_config(example_dir / "skylift.toml")
    sys.path.insert(0, str(config.source_path))
    from churn_model.data import generate_churn  # the example's own generator

    with local_aws() as local:
        console.print(f"[bold]1/3[/] local AWS (moto) on {local.endpoint_url}")
        s3 = aws.client("s3")
        s3.create_bucket(Bucket=config.storage.bucket)
        data_path = example_dir / "data" / "churn.csv"
        data_path.parent.mkdir(parents=True, exist_ok=True)
        generate_churn(rows, seed=0).to_csv(data_path, index=False)
        key = f"{config.storage.training_prefix}churn.csv"
        s3.upload_file(str(data_path), config.storage.bucket, key)
        console.print(
            f"[bold]2/3[/] generated {rows} churn rows -> s3://{config.storage.bucket}/{key}"
        )
        registry = ModelRegistry.from_config(config, s3_client=s3)
        with console.status("training ..."):
            result = train_and_register(
                config, registry, f"s3://{config.storage.bucket}/{key}", promote=True, actor="demo"
            )
        manifest = result.bundle.manifest
        console.print(
            f"[bold]3/3[/] registered [bold]{manifest.name}[/] version {manifest.version} "
            f"and promoted it to champion"
        )
        table = Table(title=f"{manifest.name} v{manifest.version} holdout metrics")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name, value in sorted(manifest.metrics.items()):
            table.add_row(name, f"{value:.4f}")
        console.print(table)
    console.print(f"demo finished in {time.perf_counter() - started:.1f} s")
