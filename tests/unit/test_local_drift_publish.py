"""A drift event that cannot be published never loses the monitor's report: the report is
stored first, the failure is logged and recorded in it, and the monitor still returns it."""

from __future__ import annotations

import logging

import boto3
from botocore.config import Config

from skylift.monitoring import monitor
from skylift.report import latest_monitoring_report
from tests.e2e.test_local_drift_retrain import shifted_capture
from tests.helpers import fail_first


def test_a_failed_publish_keeps_the_stored_report(s3, registry, churn_bundle, churn_config, caplog):
    registry.register(churn_bundle)
    registry.promote(1)
    shifted_capture(s3, churn_config)
    events = boto3.client(
        "events", region_name="us-east-1", config=Config(retries={"max_attempts": 1})
    )
    hook, _ = fail_first(99, code=500, error="InternalFailure")  # what moto answers, and AWS can
    events.meta.events.register("before-send.eventbridge.PutEvents", hook)

    with caplog.at_level(logging.ERROR, logger="skylift.monitoring"):
        report = monitor(churn_config, s3, events)

    assert report.drifted_features and report.drift_event_published is False
    assert any("drift event not published" in note for note in report.notes)
    assert "drift event not published" in caplog.text
    stored = latest_monitoring_report(churn_config, s3)
    assert stored is not None and stored.report_key == report.report_key
    assert stored.drifted_features == report.drifted_features
    assert any("drift event not published" in note for note in stored.notes)
