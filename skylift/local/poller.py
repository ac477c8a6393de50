"""SQS -> batch function, as Lambda's event source mapping does it.

The poller long-polls the queue, hands up to ``batch_size`` messages to the function as the
real SQS event, and honours the partial batch response: the messages named in
``batchItemFailures`` stay on the queue (they come back after the visibility timeout and end
in the DLQ after ``maxReceiveCount`` deliveries), the rest are deleted. If the function
raises, no message is deleted. While the handler cannot be imported, nothing is received, so
messages wait in the queue instead of burning their receive count.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

__all__ = [
    "SqsPoller",
    "build_sqs_event",
    "failed_message_ids",
    "is_s3_notification",
    "sqs_event_for_s3_notification",
]

logger = logging.getLogger(__name__)

_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
)


def _message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    # SQS API shape (StringValue, DataType) -> the Lambda event's camelCase shape.
    converted = {}
    for name, value in attributes.items():
        converted[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType"),
        }
    return converted


def build_sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """ReceiveMessage output -> the event Lambda's SQS event source mapping delivers."""
    records = []
    for message in messages:
        attributes = message.get("Attributes", {})
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {k: attributes[k] for k in _RECORD_ATTRIBUTES if k in attributes},
                "messageAttributes": _message_attributes(message.get("MessageAttributes", {})),
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def sqs_event_for_s3_notification(
    notification: dict[str, Any], queue_arn: str, region: str
) -> dict[str, Any]:
    """A bare S3 notification (``{"Records": [{"eventSource": "aws:s3", ...}]}``) as the batch
    function receives it: the body of one SQS message, as S3 -> SQS -> Lambda delivers it."""
    body = json.dumps(notification)
    now = str(int(time.time() * 1000))
    message = {
        "MessageId": str(uuid.uuid4()),
        "ReceiptHandle": f"local-{uuid.uuid4().hex}",
        "Body": body,
        "MD5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "Attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": now,
            "SenderId": "AROAS3NOTIFICATION:local",
            "ApproximateFirstReceiveTimestamp": now,
        },
    }
    return build_sqs_event([message], queue_arn, region)


def is_s3_notification(event: dict[str, Any]) -> bool:
    records = event.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:s3" for r in records)
    )


def failed_message_ids(result: Any, message_ids: set[str]) -> set[str]:
    """The messages the partial batch response reports as failed.

    Like Lambda (with ReportBatchItemFailures): a missing or empty list means all succeeded;
    an identifier that is not in the batch (or a malformed response) fails the whole batch.
    """
    if not isinstance(result, dict) or not result.get("batchItemFailures"):
        return set()
    failed = set()
    for item in result["batchItemFailures"]:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in message_ids:
            logger.error("invalid batchItemFailures entry %r: the whole batch is retried", item)
            return set(message_ids)
        failed.add(identifier)
    return failed


class SqsPoller:
    """Polls one queue for one function, in a thread or step by step (:meth:`poll_once`)."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        invoke: Callable[[dict[str, Any]], Any],
        batch_size: int = 1,
        region: str = "us-east-1",
        wait_seconds: int = 1,
        ready: Callable[[], bool] = lambda: True,
        idle_seconds: float = 1.0,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.invoke = invoke
        self.batch_size = batch_size
        self.region = region
        self.wait_seconds = wait_seconds
        self.ready = ready
        self.idle_seconds = idle_seconds
        self.batches = 0
        self.deleted = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> int:
        """Receive one batch and process it; returns how many messages were received."""
        if not self.ready():
            return 0
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        event = build_sqs_event(messages, self.queue_arn, self.region)
        ids = {m["MessageId"] for m in messages}
        self.batches += 1
        try:
            result = self.invoke(event)
        except Exception:
            # A function error: the whole batch returns after the visibility timeout.
            logger.exception("batch function failed; %d message(s) stay on the queue", len(ids))
            self.failed += len(ids)
            return len(messages)
        failed = failed_message_ids(result, ids)
        self.failed += len(failed)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)
                ],
            )
            self.deleted += len(done)
        return len(messages)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                received = self.poll_once()
            except Exception:
                if self._stop.is_set():
                    break
                logger.exception("polling %s failed", self.queue_url)
                received = 0
            if not received:
                self._stop.wait(self.idle_seconds if not self.ready() else 0.05)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="skylift-sqs-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():
                logger.warning("SQS poller still busy after %.0f s; leaving it", timeout)
