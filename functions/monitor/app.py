"""Monitor Lambda: EventBridge schedule -> skylift.monitoring (drift, live accuracy, alerts)."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from skylift import aws
from skylift.config import load_config
from skylift.monitoring import monitor

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "skylift"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Skylift"
logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)

config = load_config()
s3 = aws.client("s3")
events = aws.client("events")
metrics.set_default_dimensions(model=config.model.name)


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = monitor(config, s3, events)
    if report.get("max_psi") is not None:
        metrics.add_metric("DriftMaxPSI", MetricUnit.NoUnit, report["max_psi"])
        metrics.add_metric("DriftedFeatures", MetricUnit.Count, len(report["drifted_features"]))
    if report.get("prediction_psi") is not None:
        metrics.add_metric("PredictionPSI", MetricUnit.NoUnit, report["prediction_psi"])
    live = report.get("live_metrics") or {}
    for key, name in (
        ("accuracy", "LiveAccuracy"),
        ("roc_auc", "LiveRocAuc"),
        ("rmse", "LiveRmse"),
    ):
        if key in live:
            metrics.add_metric(name, MetricUnit.NoUnit, live[key])
    for feature, result in report.get("features", {}).items():
        if result.get("psi") is not None:
            with single_metric(
                name="FeaturePSI",
                unit=MetricUnit.NoUnit,
                value=result["psi"],
                namespace=NAMESPACE,
                default_dimensions={"service": SERVICE, "model": config.model.name},
            ) as single:
                single.add_dimension(name="feature", value=feature)
    return {
        "max_psi": report.get("max_psi"),
        "drifted_features": report.get("drifted_features", []),
        "live_metrics": report.get("live_metrics"),
        "report_key": report["report_key"],
        "drift_event_published": report.get("drift_event_published", False),
    }
