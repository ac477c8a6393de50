"""Batch Lambda: SQS (carrying S3 ObjectCreated notifications) -> skylift batch scoring.

Powertools' BatchProcessor reports partial batch failures: a message whose object hit a
transient error (S3 throttling, 5xx after botocore's retries) comes back for another try;
a permanent problem ends in a failed manifest, not in endless retries.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from skylift import aws
from skylift.batch.service import BatchService
from skylift.config import load_config

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "skylift"
logger = Logger(service=SERVICE)
metrics = Metrics(
    service=SERVICE, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Skylift"
)
# When every record fails, answer with all of them as failures rather than raising: SQS
# retries them the same way, and the invocation's error is not mistaken for a crash.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

config = load_config()
service = BatchService(config, aws.client("s3"))
metrics.set_default_dimensions(model=config.model.name)


def record_handler(record: SQSRecord) -> None:
    body = json.loads(record.body)
    if body.get("Event") == "s3:TestEvent":
        logger.info("ignoring the s3:TestEvent S3 sends when a notification is configured")
        return
    for s3_record in S3Event(body).records:
        # Keys arrive URL-encoded (spaces as '+', unicode as %XX); S3Event's per-record key
        # does not decode them (only its first-record `object_key` does).
        key = unquote_plus(s3_record.s3.get_object.key)
        etag = s3_record.s3.get_object.get("eTag")
        manifest = service.score_object(
            s3_record.s3.bucket.name, key, f'"{etag}"' if etag else None
        )
        if manifest is None or manifest.duplicate:
            continue
        metrics.add_metric("BatchRowsRead", MetricUnit.Count, manifest.rows_read)
        metrics.add_metric("BatchRowsScored", MetricUnit.Count, manifest.rows_scored)
        metrics.add_metric("BatchRowsQuarantined", MetricUnit.Count, manifest.rows_quarantined)
        metrics.add_metric("BatchFilesFailed", MetricUnit.Count, int(manifest.status == "failed"))


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # The local stack and `skylift invoke` pass a minimal context (or None).
    function = getattr(context, "function_name", None)
    if function:
        logger.append_keys(function_name=function)
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
