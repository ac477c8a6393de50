"""functions/retrain and functions/monitor take the real EventBridge events."""

from __future__ import annotations

import importlib

import pytest

from skylift.reports import RetrainReport
from tests.helpers import emf_lines, load_event


@pytest.fixture
def apps(s3, churn_config, monkeypatch):
    from churn_model.data import generate_churn

    monkeypatch.setenv("SKYLIFT_CONFIG", str(churn_config.config_path))
    s3.put_object(
        Bucket=churn_config.storage.bucket,
        Key="training/churn.csv",
        Body=generate_churn(2000, seed=2).to_csv(index=False).encode(),
    )
    import functions.monitor.app as monitor_app
    import functions.retrain.app as retrain_app

    return importlib.reload(retrain_app), importlib.reload(monitor_app)


def stored_retrain(s3, config, key: str) -> RetrainReport:
    body = s3.get_object(Bucket=config.storage.bucket, Key=key)["Body"].read()
    return RetrainReport.model_validate_json(body)


def test_scheduled_retrain_then_drift_event_retrain(apps, s3, churn_config, capsys):
    """The schedule trains and promotes a first model; the monitor's drift event starts a
    retrain recorded as drift-triggered, gated against that champion (same data: no gain)."""
    retrain_app, _ = apps
    first = retrain_app.handler(load_event("eventbridge_retrain_schedule.json"), None)
    assert first["status"] == "succeeded" and first["promoted"]
    assert stored_retrain(s3, churn_config, first["report_key"]).trigger == "schedule"
    capsys.readouterr()
    second = retrain_app.handler(load_event("eventbridge_drift_detected.json"), None)
    assert second["status"] == "succeeded" and not second["promoted"]
    report = stored_retrain(s3, churn_config, second["report_key"])
    assert report.trigger == "drift"
    assert report.champion is not None and report.champion.version == 1
    assert "gain +0.0000" in report.decision.reason
    (metrics,) = emf_lines(capsys.readouterr().out)
    assert (metrics["RetrainRuns"], metrics["RetrainPromoted"], metrics["RetrainFailures"]) == (
        [1.0],
        [0.0],
        [0.0],
    )


def test_scheduled_monitor_reports_an_empty_window(apps):
    retrain_app, monitor_app = apps
    retrain_app.handler(load_event("eventbridge_retrain_schedule.json"), None)
    reply = monitor_app.handler(load_event("eventbridge_monitor_schedule.json"), None)
    assert reply["max_psi"] is None and reply["report_key"].startswith("reports/monitoring/")
