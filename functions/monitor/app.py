"""Monitor Lambda: EventBridge schedule -> skylift.monitoring (drift, live accuracy, alerts)
and skylift.rollout_decision (the candidate's abort, promote or hold); a CloudWatch alarm on
candidate errors -> abort the candidate now."""

from __future__ import annotations

from typing import Any

from skylift import aws
from skylift.config import load_config
from skylift.monitoring import monitor
from skylift.observability import FunctionObservability, publish_monitor_metrics
from skylift.rollout_decision import abort_on_alarm, decide_rollout

config = load_config()
observability = FunctionObservability(config.model.name)
metrics = observability.metrics
s3 = aws.client("s3")
events = aws.client("events")


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    observability.start_invocation(context)
    if event.get("detail-type") == "CloudWatch Alarm State Change":
        aborted = abort_on_alarm(config, s3, event, events)
        return {"rollout": aborted.decision if aborted else None}
    report = monitor(config, s3, events)
    publish_monitor_metrics(metrics, report)
    decision = decide_rollout(config, s3, events)
    return {**report.summary(), "rollout": decision.decision if decision else None}
