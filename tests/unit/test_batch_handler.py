"""functions/batch/app.py: real SQS events in, partial batch responses out."""

from __future__ import annotations

import copy
import importlib
import json

import pytest

from tests.helpers import load_event


@pytest.fixture
def batch_app(s3, registry, churn_bundle, churn_config, monkeypatch):
    registry.register(churn_bundle)
    registry.promote(1)
    monkeypatch.setenv("SKYLIFT_CONFIG", str(churn_config.config_path))
    import functions.batch.app as app

    return importlib.reload(app)  # module state (client, config) built inside this mock


def s3_event_for(key_encoded: str, bucket: str) -> dict:
    event = copy.deepcopy(load_event("sqs_s3_object_created.json"))
    body = json.loads(event["Records"][0]["body"])
    body["Records"][0]["s3"]["object"]["key"] = key_encoded
    body["Records"][0]["s3"]["object"].pop("eTag")
    body["Records"][0]["s3"]["bucket"]["name"] = bucket
    event["Records"][0]["body"] = json.dumps(body)
    return event


def test_sample_event_key_with_spaces_and_unicode_is_decoded(
    batch_app, s3, churn_config, churn_frame
):
    key = "incoming/november/customers 2026-11 été.csv"  # the sample event's key, decoded
    body = churn_frame.head(12).drop(columns=["churned"]).to_csv(index=False).encode()
    s3.put_object(Bucket=churn_config.storage.bucket, Key=key, Body=body)
    event = load_event("sqs_s3_object_created.json")
    payload = json.loads(event["Records"][0]["body"])
    payload["Records"][0]["s3"]["object"]["eTag"] = s3.head_object(
        Bucket=churn_config.storage.bucket, Key=key
    )["ETag"].strip('"')
    event["Records"][0]["body"] = json.dumps(payload)
    assert batch_app.handler(event, None) == {"batchItemFailures": []}
    manifest = json.loads(
        s3.get_object(
            Bucket=churn_config.storage.bucket,
            Key="predictions/november/customers 2026-11 été.csv.manifest.json",
        )["Body"].read()
    )
    assert manifest["rows_scored"] == 12 and manifest["input_key"] == key


def test_s3_test_event_is_ignored(batch_app, s3, churn_config):
    assert batch_app.handler(load_event("sqs_s3_test_event.json"), None) == {
        "batchItemFailures": []
    }
    assert (
        s3.list_objects_v2(Bucket=churn_config.storage.bucket, Prefix="predictions/")["KeyCount"]
        == 0
    )


def test_plus_in_a_key_is_a_space_and_percent_2b_is_a_plus(
    batch_app, s3, churn_config, churn_frame
):
    body = churn_frame.head(3).drop(columns=["churned"]).to_csv(index=False).encode()
    s3.put_object(Bucket=churn_config.storage.bucket, Key="incoming/a b+c.csv", Body=body)
    event = s3_event_for("incoming/a+b%2Bc.csv", churn_config.storage.bucket)
    assert batch_app.handler(event, None) == {"batchItemFailures": []}
    s3.head_object(Bucket=churn_config.storage.bucket, Key="predictions/a b+c.csv.manifest.json")


def test_fault_outlasting_retries_reports_the_message_as_failed(
    batch_app, s3, churn_config, churn_frame
):
    from tests.helpers import fail_first

    body = churn_frame.head(3).drop(columns=["churned"]).to_csv(index=False).encode()
    s3.put_object(Bucket=churn_config.storage.bucket, Key="incoming/down.csv", Body=body)
    event = s3_event_for("incoming/down.csv", churn_config.storage.bucket)
    import boto3
    from botocore.config import Config

    hook, _ = fail_first(100, code=500)
    # Fewer retries than production's five keep the test fast; the behaviour is the same.
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "max_attempts": 2}),
    )
    client.meta.events.register("before-send.s3.GetObject", hook)
    production, batch_app.service.s3 = batch_app.service.s3, client
    try:
        reply = batch_app.handler(event, None)
    finally:
        client.meta.events.unregister("before-send.s3.GetObject", hook)
        batch_app.service.s3 = production
    assert reply == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert batch_app.handler(event, None) == {"batchItemFailures": []}  # SQS redelivers: succeeds
