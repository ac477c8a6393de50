"""Batch fan-out Lambda: the Plan, ScoreRange, Commit and RecordFailure steps of the state
machine (skylift/batch/state_machine.py), chosen by the payload's ``step``.

A permanent error raises RangeFailedError (not retried: the execution fails, naming the
range); anything else raises as it is and the state machine retries it with backoff.
"""

from __future__ import annotations

from typing import Any

from skylift import aws
from skylift.batch.service import BatchService
from skylift.config import load_config
from skylift.observability import FunctionObservability

config = load_config()
observability = FunctionObservability(config.model.name)
service = BatchService(config, aws.client("s3"))
fanout = service.fanout()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    observability.start_invocation(context)
    step = event["step"]
    if step == "plan":
        return fanout.plan(event["input"])
    if step == "range":
        return fanout.score(event["job"], event["range"])
    if step == "commit":
        return fanout.commit(event["job"])
    if step == "fail":
        return fanout.fail(event["job"])
    raise ValueError(f"unknown fan-out step {step!r}")
