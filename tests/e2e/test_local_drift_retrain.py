"""Drift answered on the local stack, as in AWS: the real monitor function finds drift over the
threshold and publishes the drift event (PutEvents over HTTP, EventBridge's wire format); the
local event bus matches it against the drift rule provisioned in moto and runs the real retrain
function, which records trigger "drift". With the rule disabled, nothing runs and the monitor
still returns its stored report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import EXAMPLE_DIR

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("isolated_logging")]


def project(tmp_path: Path, retrain_on_drift: bool) -> Path:
    text = (EXAMPLE_DIR / "skylift.toml").read_text()
    text = text.replace('source_dir = "."', f'source_dir = "{EXAMPLE_DIR}"')
    text = text.replace(
        "retrain_on_drift = false", f"retrain_on_drift = {str(retrain_on_drift).lower()}"
    )
    path = tmp_path / "skylift.toml"
    path.write_text(text)
    return path


def shifted_capture(s3, config, rows: int = 400) -> None:
    """API capture lines (as Firehose writes them) of inputs far from the training data."""
    from churn_model.data import generate_churn

    frame = generate_churn(rows, seed=3, shift=1.5)
    features = frame.drop(columns=[config.model.target, config.model.id_column])
    lines = [
        json.dumps(
            {
                "id": customer,
                "features": json.loads(row.to_json()),
                "prediction": 0,
                "probabilities": {"0": 0.5, "1": 0.5},
            }
        )
        for customer, (_, row) in zip(
            frame[config.model.id_column], features.iterrows(), strict=True
        )
    ]
    s3.put_object(
        Bucket=config.storage.bucket,
        Key=f"{config.storage.capture_prefix}2026/11/27/04/part-1",
        Body=("\n".join(lines) + "\n").encode(),
    )


def run_monitor(tmp_path: Path, retrain_on_drift: bool):
    from churn_model.data import generate_churn

    from skylift.config import load_config
    from skylift.local.stack import LocalStack
    from skylift.registry import ModelRegistry
    from skylift.report import latest_monitoring_report, latest_retrain_report
    from skylift.training import train_and_register

    config = load_config(project(tmp_path, retrain_on_drift))
    with LocalStack(config, clocks=False, poll=False) as stack:
        s3 = stack.client("s3")
        key = f"{config.storage.training_prefix}churn.csv"
        s3.put_object(
            Bucket=config.storage.bucket,
            Key=key,
            Body=generate_churn(1500, seed=0).to_csv(index=False).encode(),
        )
        registry = ModelRegistry.from_config(config, s3_client=s3)
        train_and_register(config, registry, f"s3://{config.storage.bucket}/{key}", promote=True)
        shifted_capture(s3, config)

        summary = stack.trigger("monitor")
        assert stack.events is not None
        stack.events.wait_idle(timeout=300)
        return (
            summary,
            list(stack.events.deliveries),
            latest_monitoring_report(config, s3),
            latest_retrain_report(config, s3),
        )


def test_drift_over_the_threshold_starts_the_retrain(tmp_path):
    summary, deliveries, monitoring, retrain = run_monitor(tmp_path, retrain_on_drift=True)
    assert summary["drifted_features"] and summary["drift_event_published"] is True
    assert monitoring is not None and monitoring.drift_event_published
    assert [(d.function, d.error) for d in deliveries] == [("retrain", None)]
    assert deliveries[0].event["source"] == "skylift.monitor"
    assert deliveries[0].event["detail"]["report_key"] == monitoring.report_key
    assert retrain is not None and retrain.trigger == "drift"
    assert retrain.status != "failed", retrain.decision.reason


def test_a_disabled_drift_rule_delivers_nothing(tmp_path):
    summary, deliveries, monitoring, retrain = run_monitor(tmp_path, retrain_on_drift=False)
    assert summary["drifted_features"] and summary["drift_event_published"] is True
    assert deliveries == [] and retrain is None
    assert monitoring is not None and monitoring.report_key == summary["report_key"]
