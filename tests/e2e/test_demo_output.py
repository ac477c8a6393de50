"""`skylift demo` as a person reads it (small data): every step, drift detected and answered by
a retrain, HTTP named as HTTP, and none of the functions' JSON logs, EMF metrics or warnings
mixed in (they go to WORKDIR/functions.log)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from skylift.cli import cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("isolated_logging")]


def test_demo_output_is_for_people(tmp_path):
    workdir = tmp_path / "demo"
    result = CliRunner().invoke(
        cli,
        ["demo", "--rows", "1500", "--batch-rows", "1500", "--workdir", str(workdir)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert not [line for line in lines if line.lstrip().startswith("{")], result.output
    assert "Traceback" not in result.output and "Warning" not in result.output
    assert "score over HTTP API" in result.output and "HTTPS" not in result.output
    assert "drift event -> retrain: challenger" in result.output
    assert "(30% canary beside champion v" in result.output
    assert any(f"-> {d}:" in result.output for d in ("promote", "abort")), result.output
    log = (workdir / "functions.log").read_text()
    assert '"level"' in log and '"_aws"' in log  # the JSON logs and EMF metrics went here
