"""``skylift batch score FILE --workers N``: the fan-out's plan on local processes gives the
single-process output, byte for byte."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from skylift.cli import cli
from tests.helpers import EXAMPLE_DIR

pytestmark = pytest.mark.usefixtures("isolated_logging")


def test_workers_score_the_same_output(tmp_path, s3, registry, churn_bundle, churn_frame):
    registry.register(churn_bundle)
    registry.promote(1)
    source = tmp_path / "customers.csv"
    frame = churn_frame.head(400).drop(columns=["churned"]).astype(object)
    frame.iat[7, 0] = 'C7\n"quoted" newline'
    frame.iat[9, 2] = "twelve"
    frame.to_csv(source, index=False)
    config = str(EXAMPLE_DIR / "skylift.toml")
    runner = CliRunner()
    single = runner.invoke(
        cli, ["--config", config, "batch", "score", str(source), "--output", str(tmp_path / "a")]
    )
    assert single.exit_code == 0, single.output
    fanned = runner.invoke(
        cli,
        [
            "--config",
            config,
            "batch",
            "score",
            str(source),
            "--output",
            str(tmp_path / "b"),
            "--workers",
            "2",
        ],
    )
    assert fanned.exit_code == 0, fanned.output
    assert "fanned out: 4 ranges on 2 workers" in fanned.output
    for kind in ("predictions", "quarantine"):
        assert (tmp_path / "b" / kind / "customers.csv").read_bytes() == (
            tmp_path / "a" / kind / "customers.csv"
        ).read_bytes()
    assert "read 400 rows = scored 399 + quarantined 1" in fanned.output


def test_workers_must_be_positive(tmp_path):
    source = tmp_path / "x.csv"
    source.write_text("a\n1\n")
    result = CliRunner().invoke(
        cli,
        [
            "--config",
            str(EXAMPLE_DIR / "skylift.toml"),
            "batch",
            "score",
            str(source),
            "--workers",
            "0",
        ],
    )
    assert result.exit_code == 2
    assert "--workers" in result.output
