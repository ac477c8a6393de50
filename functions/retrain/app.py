"""Retrain Lambda: EventBridge (schedule, or the monitor's drift event) -> skylift.retraining."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from skylift import aws
from skylift.config import load_config
from skylift.retraining import retrain

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "skylift"
logger = Logger(service=SERVICE)
metrics = Metrics(
    service=SERVICE, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Skylift"
)

config = load_config()
s3 = aws.client("s3")
metrics.set_default_dimensions(model=config.model.name)


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    source = EventBridgeEvent(event)
    trigger = "drift" if source.source == "skylift.monitor" else "schedule"
    metrics.add_metric("RetrainRuns", MetricUnit.Count, 1)
    report = retrain(config, s3, context=context, trigger=trigger)
    failed = report.get("status") != "succeeded"
    metrics.add_metric("RetrainFailures", MetricUnit.Count, int(failed))
    metrics.add_metric(
        "RetrainPromoted", MetricUnit.Count, int(report["decision"].get("promoted", False))
    )
    challenger = (report.get("challenger") or {}).get("metrics", {})
    if config.retrain.metric in challenger:
        metrics.add_metric("ChallengerMetric", MetricUnit.NoUnit, challenger[config.retrain.metric])
    return {
        "status": report.get("status"),
        "promoted": report["decision"].get("promoted", False),
        "reason": report["decision"].get("reason"),
        "report_key": report["report_key"],
    }
