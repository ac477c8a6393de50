"""``skylift batch score``: the batch function's code path on one file, with a progress bar."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from skylift.cli.main import CliState, cli, console, pass_state


@cli.group()
def batch() -> None:
    """Score files in batch, without the S3 trigger."""


@batch.command("score")
@click.argument("source")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("skylift-output"),
    show_default=True,
    help="Folder for predictions/ and quarantine/ when SOURCE is a local file.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Local file: score it as the fan-out does (the same plan: ranges on record "
    "boundaries), on this many processes.",
)
@pass_state
def score(state: CliState, source: str, output: Path, workers: int) -> None:
    """Score SOURCE (a local .csv/.jsonl[.gz]/.parquet file or an s3:// URI) with the champion.

    An s3:// object is scored into the same bucket's predictions/ and quarantine/, exactly as
    the batch function does (and a duplicate is skipped); a local file into --output.
    """
    from skylift.batch.service import BatchService

    service = BatchService(state.config, state.client("s3"))
    scorer = service.scorer()
    console.print(f"scoring with {scorer.name} version {scorer.version}")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(source, total=None, rate="")

        def advance(rows: int) -> None:
            progress.advance(task, rows)
            elapsed = progress.tasks[task].elapsed or 0
            if elapsed:
                progress.update(
                    task, rate=f"{progress.tasks[task].completed / elapsed:,.0f} rows/s"
                )

        if source.startswith("s3://"):
            parsed = urlparse(source)
            manifest = service.job.score_s3_object(
                service.s3, parsed.netloc, parsed.path.lstrip("/"), progress=advance
            )
            where = f"s3://{parsed.netloc}/"
        else:
            path = Path(source)
            if not path.is_file():
                raise click.BadParameter(f"{path}: no such file", param_hint="SOURCE")
            if workers > 1:
                from skylift.batch.local_fanout import score_file_fanned

                wanted = -(-path.stat().st_size // state.config.batch.fanout_range_bytes)
                manifest = score_file_fanned(
                    state.config,
                    scorer,
                    path,
                    output,
                    ranges=max(wanted, 2 * workers),
                    workers=workers,
                )
                progress.update(task, completed=manifest.rows_read)
            else:
                manifest = service.job.score_file(path, output, progress=advance)
            where = f"{output}/"
    if manifest.duplicate:
        console.print(f"already scored by version {manifest.model_version}: nothing to do")
    if manifest.status == "failed":
        console.print(f"[red]failed[/]: {manifest.reason}")
        raise SystemExit(2)
    console.print(
        f"read {manifest.rows_read:,} rows = scored {manifest.rows_scored:,} + quarantined "
        f"{manifest.rows_quarantined:,} (blank lines skipped: {manifest.blank_lines_skipped})"
    )
    if manifest.ranges:
        console.print(f"fanned out: {len(manifest.ranges)} ranges on {workers} workers")
    console.print(f"predictions: {where}{manifest.predictions_key}")
    if manifest.quarantine_key:
        console.print(f"quarantine:  {where}{manifest.quarantine_key}")
