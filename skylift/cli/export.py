"""``skylift export onnx|sql``: a registered version's verified exports, for use elsewhere."""

from __future__ import annotations

from pathlib import Path

import click

from skylift.cli.main import CliState, cli, console, err_console, pass_state, user_errors
from skylift.cli.models import _version_or_alias
from skylift.errors import SkyliftError
from skylift.exports.sql import DIALECTS
from skylift.registry import DEFAULT_ALIAS


class ExportRefusedError(SkyliftError):
    """The export is missing or was not verified against the pipeline."""


@cli.group()
def export() -> None:
    """Write a version's verified ONNX model or scoring SQL."""


@export.command("onnx")
@click.argument("version", required=False)
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False))
@pass_state
@user_errors
def export_onnx(state: CliState, version: str | None, output: str) -> None:
    """Write VERSION's model.onnx (a number or an alias; default: champion)."""
    registry = state.registry()
    number = _version_or_alias(registry, version or DEFAULT_ALIAS)
    bundle = registry.load(number, runtime="onnx")  # verified, sha256 checked
    assert bundle.onnx is not None
    Path(output).write_bytes(bundle.onnx)
    check = bundle.manifest.exports.onnx
    console.print(f"wrote {output} ({len(bundle.onnx)} bytes): {check.summary()}")


@export.command("sql")
@click.argument("version", required=False)
@click.option("--dialect", type=click.Choice(DIALECTS), default="duckdb", show_default=True)
@click.option("--table", required=True, help="Table holding the feature columns (and the id).")
@click.option("-o", "--output", "output", default=None, type=click.Path(dir_okay=False))
@click.option(
    "--allow-unverified",
    is_flag=True,
    help="Write the query even though it differs from the pipeline (the difference is shown).",
)
@pass_state
@user_errors
def export_sql(
    state: CliState,
    version: str | None,
    dialect: str,
    table: str,
    output: str | None,
    allow_unverified: bool,
) -> None:
    """A query scoring TABLE with VERSION: one row per input row, the id and the probabilities."""
    from skylift.exports.sql import SqlExportError, to_sql

    registry = state.registry()
    number = _version_or_alias(registry, version or DEFAULT_ALIAS)
    manifest = registry.describe(number)
    check = manifest.exports.sql if manifest.exports else None
    if check is None or not check.available:
        why = "registered without exports" if check is None else check.reason
        raise ExportRefusedError(f"{manifest.name} version {number} has no SQL export: {why}")
    if not check.verified:
        if not allow_unverified:
            raise ExportRefusedError(
                f"{manifest.name} version {number}: the SQL export is {check.summary()}; "
                "pass --allow-unverified to write it anyway"
            )
        err_console.print(f"warning: writing an unverified query: {check.summary()}")
    bundle = registry.load(number, allow_version_skew=state.config.model.allow_version_skew)
    keep = [manifest.id_column] if manifest.id_column else []
    try:
        query = to_sql(
            bundle.model, manifest.feature_schema, table=table, dialect=dialect, keep=keep
        )
    except SqlExportError as exc:
        raise ExportRefusedError(f"{manifest.name} version {number}: {exc}") from exc
    if output is None:
        click.echo(query)
        return
    Path(output).write_text(query + "\n")
    console.print(f"wrote {output} ({dialect}, table {table}): {check.summary()}")
