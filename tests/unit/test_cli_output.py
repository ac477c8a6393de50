"""Output a person reads: piped tables are not cut, a scheduled run is a summary (not a
Python dict or raw JSON), and the demo names the API's real scheme."""

from __future__ import annotations

from click.testing import CliRunner

from skylift.cli import cli
from skylift.cli.local import summary_lines
from skylift.local.tour import Tour
from tests.helpers import EXAMPLE_DIR


def test_a_piped_table_keeps_every_column_name(registry, churn_bundle):
    registry.register(churn_bundle)
    registry.promote(1)
    result = CliRunner().invoke(
        cli, ["models", "list", "-c", str(EXAMPLE_DIR / "skylift.toml")], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    for metric in churn_bundle.manifest.metrics:
        assert metric in result.output
    assert "…" not in result.output


def test_a_monitor_run_reads_as_sentences():
    lines = summary_lines(
        {
            "max_psi": 0.4123,
            "drifted_features": ["monthly_charges", "contract"],
            "live_metrics": {"rows": 120, "accuracy": 0.81, "roc_auc": None},
            "report_key": "reports/monitoring/x.json",
            "drift_event_published": True,
        }
    )
    assert lines == [
        "max PSI 0.412; drifted: monthly_charges, contract",
        "drift event published",
        "live metrics on 120 labelled rows: accuracy 0.8100",
        "report: reports/monitoring/x.json",
    ]
    retrain = summary_lines(
        {"status": "succeeded", "promoted": False, "reason": "no gain", "report_key": "k"}
    )
    assert retrain == ["succeeded: challenger not promoted: no gain", "report: k"]


class _Stack:
    endpoint_url = "http://127.0.0.1:1"
    api_key = "k"

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url


def test_the_demo_names_the_apis_scheme(churn_config, tmp_path):
    def tour(url: str) -> Tour:
        return Tour(churn_config, _Stack(url), None, tmp_path, generate=lambda *a, **k: None)

    assert tour("http://127.0.0.1:5000/prod").api_scheme == "HTTP"
    assert tour("https://abc.execute-api.us-east-1.amazonaws.com/prod").api_scheme == "HTTPS"
