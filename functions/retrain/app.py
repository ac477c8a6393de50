"""Retrain Lambda: EventBridge (schedule, or the monitor's drift event) -> skylift.retraining."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from skylift import aws
from skylift.config import load_config
from skylift.observability import FunctionObservability, publish_retrain_metrics
from skylift.retraining import retrain
from skylift.topology import DRIFT_SOURCE

config = load_config()
observability = FunctionObservability(config.model.name)
metrics = observability.metrics
s3 = aws.client("s3")


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    observability.start_invocation(context)
    trigger = "drift" if EventBridgeEvent(event).source == DRIFT_SOURCE else "schedule"
    report = retrain(config, s3, context=context, trigger=trigger)
    publish_retrain_metrics(metrics, report)
    return report.summary()
