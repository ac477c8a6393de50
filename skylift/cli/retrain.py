"""``skylift retrain``, ``skylift monitor`` and ``skylift report``: the scheduled functions' code
paths, run here against any endpoint, and the HTML report."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from skylift.cli.main import CliState, cli, console, pass_state


@cli.command("retrain")
@pass_state
def retrain_command(state: CliState) -> None:
    """Train a challenger on training/, gate it against the champion, promote if it wins."""
    from skylift.retraining import retrain

    with console.status("retraining ..."):
        report = retrain(state.config, state.client("s3"), trigger="cli")
    decision = report.decision
    table = Table(title=f"retrain of {state.config.model.name}: {report.status}")
    table.add_column("check")
    table.add_column("passed")
    table.add_column("detail")
    for check in decision.checks:
        table.add_row(check["name"], "yes" if check["passed"] else "[red]no[/]", check["detail"])
    console.print(table)
    verdict = "promoted" if decision.promoted else "not promoted"
    version = report.challenger.version if report.challenger else None
    console.print(f"challenger v{version}: {verdict}: {decision.reason}", markup=False)
    holdout = report.holdout
    if holdout is not None and holdout.scored_rows is not None:
        excluded = "".join(f"; {n} {why}" for why, n in holdout.exclusions.items())
        console.print(
            f"holdout: {'both models' if report.champion else 'the challenger'} scored on "
            f"{holdout.scored_rows} of {holdout.rows} rows "
            f"({holdout.excluded_rows} excluded{excluded})",
            markup=False,
        )
    for warning in report.warnings:
        console.print(f"warning: {warning}", markup=False)
    console.print(f"report: s3://{state.config.storage.bucket}/{report.report_key}")


@cli.command("monitor")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@pass_state
def monitor_command(state: CliState, as_json: bool) -> None:
    """Compare the window's inputs with the champion's baseline; live metrics from labels;
    decide about an active candidate (canary or shadow) by [rollout]."""
    from skylift.monitoring import monitor
    from skylift.rollout_decision import decide_rollout

    report = monitor(state.config, state.client("s3"), state.client("events"))
    rollout = decide_rollout(state.config, state.client("s3"), state.client("events"))
    if as_json:
        click.echo(report.model_dump_json(indent=2))
        return
    table = Table(
        title=f"drift of {state.config.model.name} v{report.model_version} ({report.rows or 0} inputs)"
    )
    for column in ("feature", "PSI", "test p-value", "drifted"):
        table.add_column(column)
    for name, result in report.features.items():
        pvalue = result.ks_pvalue if result.ks_pvalue is not None else result.chi2_pvalue
        table.add_row(
            name,
            f"{result.psi:.3f}" if result.psi is not None else "",
            f"{pvalue:.3g}" if pvalue is not None else "",
            "[red]yes[/]" if result.drifted else "",
        )
    console.print(table)
    live = report.live_metrics
    if live is None:
        console.print("live metrics: no labels joined in the window")
    else:
        values = live.model_dump(exclude={"rows"}, exclude_none=True)
        shown = ", ".join(f"{name} {value:.4f}" for name, value in values.items())
        console.print(f"live metrics on {live.rows} labelled rows: {shown}")
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    if rollout is not None:
        console.print(
            f"rollout: candidate v{rollout.candidate.version} ({rollout.mode}) vs champion "
            f"v{rollout.champion.version}: {rollout.decision}"
            + (" (applied)" if rollout.applied else "")
            + f"; {'; '.join(rollout.reasons)}",
            markup=False,
        )
    console.print(f"report: s3://{state.config.storage.bucket}/{report.report_key}")


@cli.command("report")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("skylift-report.html"),
    show_default=True,
)
@pass_state
def report_command(state: CliState, output: Path) -> None:
    """Render the latest monitoring report and version history as one HTML file."""
    from skylift.report import render_report_file

    path = render_report_file(state.config, output, s3_client=state.client("s3"))
    console.print(f"wrote {path}")
