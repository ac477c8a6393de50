"""``skylift train`` and ``skylift models list|describe|verify|promote|rollback`` and the
rollout commands (``canary``, ``shadow``, ``promote-candidate``, ``abort-candidate``)."""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table
from rich.text import Text

from skylift.cli.main import CliState, cli, console, pass_state
from skylift.registry import DEFAULT_ALIAS, ModelRegistry


@cli.command()
@click.option(
    "--data",
    "data",
    default=None,
    help="CSV/Parquet path or s3:// URI (default: [model].training_data).",
)
@click.option("--promote/--no-promote", default=False, help="Make the new version the champion.")
@pass_state
def train(state: CliState, data: str | None, promote: bool) -> None:
    """Run the training entry point, evaluate on a holdout, build the bundle and register it."""
    from skylift.training import TrainingError, train_and_register

    config = state.config
    source = data or config.model.training_data
    if source is None:
        raise TrainingError("no training data: pass --data or set [model].training_data")
    if not str(source).startswith("s3://"):
        source = str(config.resolve_path(str(source)) if data is None else source)
    registry = state.registry()
    with console.status(f"training {config.model.name} on {source} ..."):
        result = train_and_register(config, registry, source, promote=promote)
    manifest = result.bundle.manifest
    console.print(
        f"registered [bold]{manifest.name}[/] version [bold]{manifest.version}[/] "
        f"in {registry.uri}" + (" and promoted it to champion" if result.promoted else "")
    )
    console.print(_metrics_table(manifest.metrics, title="holdout metrics"))
    for warning in result.warnings:  # plain text: "[features.x]" is not rich markup
        console.print(Text("warning: ", style="yellow") + Text(warning), soft_wrap=True)


@cli.group()
def models() -> None:
    """Inspect and move model versions in the registry."""


@models.command("list")
@pass_state
def list_models(state: CliState) -> None:
    """List the registered versions, their metrics and aliases."""
    from skylift.rollout import CANDIDATE_ALIAS, describe_candidate, read_rollout

    registry = state.registry()
    versions = registry.list_versions()
    aliases = registry.aliases()
    rollout = read_rollout(registry)
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        if alias != CANDIDATE_ALIAS:  # a closed candidate (promoted, aborted) is history
            by_version.setdefault(version, []).append(alias)
    if rollout.candidate is not None:
        by_version.setdefault(rollout.candidate.version, []).append(
            describe_candidate(rollout.candidate)
        )
    table = Table(title=f"{registry.name} ({registry.uri})")
    table.add_column("version", justify="right")
    table.add_column("created (UTC)")
    table.add_column("aliases")
    metric_names = sorted({m for v in versions for m in v.metrics})
    for name in metric_names:
        table.add_column(name, justify="right")
    table.add_column("rows", justify="right")
    for manifest in versions:
        table.add_row(
            str(manifest.version),
            manifest.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            ", ".join(sorted(by_version.get(manifest.version or 0, []))),
            *[_fmt(manifest.metrics.get(m)) for m in metric_names],
            str(manifest.training_data.rows) if manifest.training_data else "",
        )
    if not versions:
        console.print(f"no versions of {registry.name} registered yet in {registry.uri}")
        return
    console.print(table)


@models.command()
@click.argument("version", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the whole manifest as JSON.")
@pass_state
def describe(state: CliState, version: str | None, as_json: bool) -> None:
    """Show one version (a number or an alias; default: champion)."""
    registry = state.registry()
    number = _version_or_alias(registry, version or DEFAULT_ALIAS)
    manifest = registry.describe(number)
    if as_json:
        click.echo(manifest.model_dump_json(indent=2, exclude={"baseline"}))
        return
    table = Table(title=f"{manifest.name} version {manifest.version}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    table.add_row("created", manifest.created_at.isoformat())
    table.add_row("task", manifest.task)
    table.add_row("target", manifest.target)
    table.add_row("classes", json.dumps(manifest.classes))
    table.add_row("sha256", manifest.sha256)
    signature = registry.signature(number)
    if signature is None:
        table.add_row("signed", "no (unsigned)")
    else:
        statement = signature.statement
        table.add_row(
            "signed", f"by {statement.signer or 'unknown'} at {statement.signed_at.isoformat()}"
        )
        table.add_row("signing key", f"{signature.key_id} ({signature.algorithm})")
    table.add_row(
        "runtime", ", ".join(f"{k} {v}" for k, v in manifest.runtime.model_dump().items())
    )
    if manifest.training_data:
        ref = manifest.training_data
        table.add_row("training data", f"{ref.uri} ({ref.rows} rows, sha256 {ref.sha256[:12]}...)")
    for name, value in sorted(manifest.metrics.items()):
        table.add_row(f"metric {name}", _fmt(value))
    for kind in ("onnx", "sql"):
        check = getattr(manifest.exports, kind) if manifest.exports else None
        table.add_row(f"export {kind}", check.summary() if check else "not attempted")
    for feature in manifest.feature_schema.features:
        detail = (
            f"numeric [{_fmt(feature.min)}, {_fmt(feature.max)}]"
            if feature.kind == "numeric"
            else f"categorical ({len(feature.categories)} categories)"
        )
        table.add_row(
            f"feature {feature.name}", detail + (", nullable" if feature.nullable else "")
        )
    console.print(table)


@models.command()
@click.argument("version", required=False)
@pass_state
def verify(state: CliState, version: str | None) -> None:
    """Re-check one version (default: champion) without unpickling it: its signature, the
    artifact's sha256 and the runtime it was written by. Exits 1 if any check fails."""
    from skylift.model_checks import check_version

    registry = state.registry()
    number = _version_or_alias(registry, version or DEFAULT_ALIAS)
    checks = check_version(registry, number)
    table = Table(title=f"{registry.name} version {number}")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for check in checks:
        style = {"passed": "green", "failed": "bold red", "skipped": "yellow"}[check.result]
        table.add_row(check.name, Text(check.result, style=style), Text(check.detail))
    console.print(table)
    if any(check.result == "failed" for check in checks):
        sys.exit(1)


@models.command()
@click.argument("version")
@click.option("--alias", default=DEFAULT_ALIAS, show_default=True)
@click.option("--reason", default="manual promotion")
@pass_state
def promote(state: CliState, version: str, alias: str, reason: str) -> None:
    """Point an alias (champion by default) at VERSION."""
    registry = state.registry()
    result = registry.promote(
        _version_or_alias(registry, version), alias, reason=reason, actor="cli"
    )
    previous = result.history[0].version if result.history else None
    console.print(f"{registry.name}/{alias}: {previous} -> [bold]{result.version}[/]")


@models.command()
@click.option("--alias", default=DEFAULT_ALIAS, show_default=True)
@pass_state
def rollback(state: CliState, alias: str) -> None:
    """Point an alias back at the version it named before."""
    registry = state.registry()
    before = registry.resolve(alias)
    result = registry.rollback(alias, actor="cli")
    console.print(f"{registry.name}/{alias}: {before} -> [bold]{result.version}[/] (rolled back)")


@models.command()
@click.argument("version")
@click.option(
    "--percent",
    type=float,
    required=True,
    help="Share of the traffic the candidate answers, between 0 and 100 (exclusive).",
)
@click.option("--reason", default="manual canary")
@pass_state
def canary(state: CliState, version: str, percent: float, reason: str) -> None:
    """Make VERSION the candidate, answering PERCENT % of the traffic (routed per id)."""
    from skylift.rollout import start_candidate

    registry = state.registry()
    number = _version_or_alias(registry, version)
    result = start_candidate(
        registry, number, "canary", percent=percent, reason=reason, actor="cli"
    )
    console.print(
        f"{registry.name}/candidate: version [bold]{result.version}[/] as a canary "
        f"answering {percent:g}% of the traffic"
    )


@models.command()
@click.argument("version")
@click.option("--reason", default="manual shadow")
@pass_state
def shadow(state: CliState, version: str, reason: str) -> None:
    """Make VERSION the candidate in shadow: scored on the champion's captured records by
    the monitor, never answering a request."""
    from skylift.rollout import start_candidate

    registry = state.registry()
    number = _version_or_alias(registry, version)
    result = start_candidate(registry, number, "shadow", reason=reason, actor="cli")
    console.print(f"{registry.name}/candidate: version [bold]{result.version}[/] in shadow")


@models.command("promote-candidate")
@click.option("--reason", default="manual promotion of the candidate")
@pass_state
def promote_candidate_command(state: CliState, reason: str) -> None:
    """Make the candidate the champion and close the rollout."""
    from skylift.rollout import promote_candidate

    registry = state.registry()
    before = registry.resolve()
    result = promote_candidate(registry, reason=reason, actor="cli")
    console.print(f"{registry.name}/champion: {before} -> [bold]{result.version}[/] (candidate)")


@models.command("abort-candidate")
@click.option("--reason", default="manual abort")
@pass_state
def abort_candidate_command(state: CliState, reason: str) -> None:
    """Stop the candidate: every request goes to the champion again."""
    from skylift.rollout import abort_candidate

    registry = state.registry()
    result = abort_candidate(registry, reason=reason, actor="cli")
    console.print(
        f"{registry.name}/candidate: version {result.version} aborted; "
        f"champion {registry.resolve()} answers everything"
    )


def _version_or_alias(registry: ModelRegistry, text: str) -> int:
    return int(text) if text.isdigit() else registry.resolve(text)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _metrics_table(metrics: dict[str, float], title: str) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in sorted(metrics.items()):
        table.add_row(name, _fmt(value))
    return table
