"""Monitor Lambda: EventBridge schedule -> skylift.monitoring (drift, live accuracy, alerts)."""

from __future__ import annotations

from typing import Any

from skylift import aws
from skylift.config import load_config
from skylift.monitoring import monitor
from skylift.observability import FunctionObservability, publish_monitor_metrics

config = load_config()
observability = FunctionObservability(config.model.name)
metrics = observability.metrics
s3 = aws.client("s3")
events = aws.client("events")


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    observability.start_invocation(context)
    report = monitor(config, s3, events)
    publish_monitor_metrics(metrics, report)
    return report.summary()
