"""The HTML report holds every chart and stands alone."""

from __future__ import annotations

from skylift.monitoring import monitor
from skylift.report import render_report_file
from skylift.scoring import Scorer
from tests.helpers import capture


def test_report_contains_every_chart(s3, churn_config, registry, churn_bundle, tmp_path):
    from churn_model.data import generate_churn

    registry.register(churn_bundle)
    registry.register(churn_bundle)
    registry.promote(1)
    capture(
        s3, churn_config, Scorer(registry.load_alias()), generate_churn(1000, seed=8, shift=0.8)
    )
    monitor(churn_config, s3)
    page = render_report_file(churn_config, tmp_path / "r.html", s3_client=s3).read_text()
    assert page.count('class="chart psi"') == 1
    assert page.count('class="chart dist"') == len(churn_bundle.manifest.feature_schema.features)
    assert page.count('class="chart versions"') == 1 and "v2" in page
    assert "threshold 0.25" in page and "monthly_charges" in page
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org", "")


def test_report_without_monitoring_is_still_a_page(s3, churn_config, tmp_path):
    page = render_report_file(churn_config, tmp_path / "r.html", s3_client=s3).read_text()
    assert "no monitoring report yet" in page


def test_latest_report_is_found_past_the_first_listing_page(s3, churn_config):
    """A listing returns 1,000 keys at most: ~42 days of hourly reports."""
    from datetime import UTC, datetime, timedelta

    from skylift.report import latest_report_key

    prefix = f"{churn_config.storage.reports_prefix}monitoring/"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    keys = [
        f"{prefix}{(start + timedelta(hours=hour)).strftime('%Y%m%dT%H%M%S%fZ')}.json"
        for hour in range(1_005)
    ]
    for key in keys:
        s3.put_object(Bucket=churn_config.storage.bucket, Key=key, Body=b"{}")
    assert latest_report_key(churn_config, s3, "monitoring") == keys[-1]
