"""Batch Lambda: SQS (carrying S3 ObjectCreated notifications) -> skylift batch scoring.

Powertools' BatchProcessor reports partial batch failures: a message whose object hit a
transient error (S3 throttling, 5xx after botocore's retries) comes back for another try;
a permanent problem ends in a failed manifest, not in endless retries.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from skylift import aws
from skylift.batch.service import BatchService
from skylift.config import load_config
from skylift.observability import FunctionObservability, publish_batch_metrics

config = load_config()
observability = FunctionObservability(config.model.name)
metrics = observability.metrics
# Set where the stack deploys the fan-out state machine: objects of at least
# [batch].fanout_min_bytes start an execution there instead of being scored here.
FANOUT_ARN = os.environ.get("SKYLIFT_FANOUT_STATE_MACHINE_ARN")
service = BatchService(
    config,
    aws.client("s3"),
    sfn=aws.client("stepfunctions") if FANOUT_ARN else None,
    fanout_state_machine_arn=FANOUT_ARN,
)
# When every record fails, answer with all of them as failures rather than raising: SQS
# retries them the same way, and the invocation's error is not mistaken for a crash.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    for manifest in service.score_message(record.body, record.message_id):
        publish_batch_metrics(metrics, manifest)


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    observability.start_invocation(context)
    reply = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(reply)
