"""The SQS -> batch function poller: the real SQS event shape, partial batch responses, errors."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from skylift.local.poller import SqsPoller, build_sqs_event, failed_message_ids

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:batch"


@pytest.fixture
def queue():
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        # Visibility 0: a message that is not deleted is visible again at once.
        url = sqs.create_queue(QueueName="batch", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
        yield sqs, url


def remaining(sqs: Any, url: str) -> list[str]:
    response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return sorted(m["Body"] for m in response.get("Messages", []))


def test_event_has_the_lambda_sqs_record_shape(queue):
    sqs, url = queue
    sqs.send_message(
        QueueUrl=url,
        MessageBody='{"Records": []}',
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "s3"}},
    )
    messages = sqs.receive_message(
        QueueUrl=url, AttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"]
    event = build_sqs_event(messages, QUEUE_ARN, "us-east-1")
    (record,) = event["Records"]
    assert record["messageId"] == messages[0]["MessageId"]
    assert record["receiptHandle"] == messages[0]["ReceiptHandle"]
    assert record["body"] == '{"Records": []}'
    assert record["md5OfBody"] == messages[0]["MD5OfBody"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == QUEUE_ARN
    assert record["awsRegion"] == "us-east-1"
    assert set(record["attributes"]) == {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    }
    assert record["messageAttributes"]["kind"]["stringValue"] == "s3"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"


def test_event_parses_with_powertools_sqs_data_class(queue):
    from aws_lambda_powertools.utilities.data_classes import SQSEvent

    sqs, url = queue
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    messages = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
    parsed = SQSEvent(build_sqs_event(messages, QUEUE_ARN, "us-east-1"))
    record = next(iter(parsed.records))
    assert record.body == "hello"
    assert record.attributes.approximate_receive_count == "1"


def test_successful_batch_is_deleted(queue):
    sqs, url = queue
    sqs.send_message(QueueUrl=url, MessageBody="one")
    events: list[dict[str, Any]] = []
    poller = SqsPoller(sqs, url, QUEUE_ARN, invoke=lambda e: events.append(e) or {}, wait_seconds=0)
    assert poller.poll_once() == 1
    assert events[0]["Records"][0]["body"] == "one"
    assert remaining(sqs, url) == []
    assert poller.deleted == 1


def test_partial_batch_response_keeps_only_the_failed_messages(queue):
    sqs, url = queue
    for body in ("good", "bad", "fine"):
        sqs.send_message(QueueUrl=url, MessageBody=body)

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        failures = [
            {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"
        ]
        return {"batchItemFailures": failures}

    poller = SqsPoller(sqs, url, QUEUE_ARN, invoke=handler, batch_size=10, wait_seconds=0)
    while poller.deleted < 2:
        assert poller.poll_once() > 0
    assert remaining(sqs, url) == ["bad"]
    assert poller.failed >= 1


def test_function_error_deletes_nothing(queue):
    sqs, url = queue
    sqs.send_message(QueueUrl=url, MessageBody="x")

    def broken(event: dict[str, Any]) -> Any:
        raise RuntimeError("batch function crashed")

    poller = SqsPoller(sqs, url, QUEUE_ARN, invoke=broken, wait_seconds=0)
    assert poller.poll_once() == 1
    assert remaining(sqs, url) == ["x"]
    assert poller.deleted == 0


def test_nothing_is_received_while_the_handler_is_not_ready(queue):
    sqs, url = queue
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Event": "s3:TestEvent"}))
    poller = SqsPoller(
        sqs, url, QUEUE_ARN, invoke=lambda e: {}, wait_seconds=0, ready=lambda: False
    )
    assert poller.poll_once() == 0
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "1"


@pytest.mark.parametrize(
    ("result", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "a"}]}, {"a"}),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
    ],
)
def test_failed_message_ids_follow_lambda_rules(result, failed):
    assert failed_message_ids(result, {"a", "b"}) == failed
