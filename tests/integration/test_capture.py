"""Capture of scored requests: the service -> Firehose (moto) -> S3 capture/, as JSON Lines."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from skylift.api_capture import FirehoseCapture, NullCapture
from skylift.serving import ModelHolder, build_service, create_service
from tests.helpers import RECORD, call, create_signing_key, emf_lines, predict_event

STREAM = "skylift-churn-capture"


@pytest.fixture
def aws(churn_config):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=churn_config.storage.bucket)
        create_signing_key(churn_config)
        firehose = boto3.client("firehose", region_name="us-east-1")
        firehose.create_delivery_stream(
            DeliveryStreamName=STREAM,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/skylift-capture",
                "BucketARN": f"arn:aws:s3:::{churn_config.storage.bucket}",
                "Prefix": churn_config.storage.capture_prefix,
                "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 1},
            },
        )
        yield s3


@pytest.fixture
def champion(aws, churn_config, churn_bundle):
    from skylift.registry import ModelRegistry

    registry = ModelRegistry.from_config(churn_config, s3_client=aws)
    manifest = registry.register(churn_bundle)
    registry.promote(manifest.version)
    return manifest


def capture_config(churn_config, stream: str = STREAM, rate: float = 1.0):
    api = churn_config.api.model_copy(
        update={"capture_stream": stream, "capture_sample_rate": rate}
    )
    return churn_config.model_copy(update={"api": api})


def captured_lines(s3, config) -> list[dict[str, Any]]:
    listing = s3.list_objects_v2(Bucket=config.storage.bucket, Prefix=config.storage.capture_prefix)
    lines: list[dict[str, Any]] = []
    for item in listing.get("Contents", []):
        body = s3.get_object(Bucket=config.storage.bucket, Key=item["Key"])["Body"].read()
        assert body.endswith(b"\n"), "every capture line is newline-terminated"
        lines.extend(json.loads(line) for line in body.decode().splitlines())
    return lines


def test_scored_records_land_in_s3_capture_as_json_lines(aws, champion, churn_config):
    config = capture_config(churn_config)
    service = create_service(config, s3_client=aws)
    assert isinstance(service.capture, FirehoseCapture)
    second = dict(RECORD, customer_id="C2", age=None)
    event = predict_event({"records": [RECORD, second]})
    status, body, _ = call(service, event)
    assert status == 200
    assert service.capture.flush(timeout=10)
    lines = captured_lines(aws, config)
    assert [line["id"] for line in lines] == ["C1", "C2"]
    for line, prediction in zip(lines, body["predictions"], strict=True):
        assert set(line) == {
            "captured_at",
            "model",
            "model_version",
            "request_id",
            "id",
            "features",
            "prediction",
            "probabilities",
        }
        assert datetime.fromisoformat(line["captured_at"]).tzinfo is not None
        assert (line["model"], line["model_version"]) == ("churn", champion.version)
        assert line["request_id"] == event["requestContext"]["requestId"]
        assert line["prediction"] == prediction["prediction"]
        assert line["probabilities"] == prediction["probabilities"]
        assert "customer_id" not in line["features"]
        assert set(line["features"]) == set(RECORD) - {"customer_id"}
    assert lines[1]["features"]["age"] is None


def test_capture_failure_does_not_fail_the_request_and_is_counted(
    aws, champion, churn_config, capsys
):
    config = capture_config(churn_config, stream="no-such-stream")
    service = create_service(config, s3_client=aws)
    status, _, _ = call(service, predict_event({"records": [RECORD]}))
    assert status == 200
    assert service.capture.flush(timeout=10)
    capsys.readouterr()
    status, _, _ = call(service, predict_event({"records": [RECORD]}))
    assert status == 200
    service.capture.flush(timeout=10)
    failures = [line["CaptureFailures"][0] for line in emf_lines(capsys.readouterr().out)]
    assert failures == [1.0]  # the first request's record, reported with the next request


def test_a_hanging_capture_does_not_hold_the_request(aws, champion, churn_config):
    import threading

    sending = threading.Event()
    release = threading.Event()

    class HangingFirehose:
        def put_record_batch(self, **kwargs: Any) -> dict[str, Any]:
            sending.set()
            release.wait(10)
            return {"FailedPutCount": 0, "RequestResponses": [{}] * len(kwargs["Records"])}

    config = capture_config(churn_config)
    service = create_service(config, s3_client=aws, firehose_client_factory=HangingFirehose)
    try:
        for _ in range(3):  # replies come back while the first send is still stuck
            status, _, _ = call(service, predict_event({"records": [RECORD]}))
            assert status == 200
        assert sending.wait(5)
        assert not service.capture.flush(timeout=0.05)
    finally:
        release.set()
    assert service.capture.flush(timeout=5)
    assert service.capture.take_failures() == 0


@pytest.mark.parametrize(("rate", "low", "high"), [(0.25, 80, 120), (1.0, 400, 400)])
def test_sample_rate_decides_which_requests_are_captured(
    aws, champion, churn_config, rate, low, high
):
    """Sampling is per request: a sampled request's records are all captured under its own
    request id, an unsampled one's not at all; the share follows [api].capture_sample_rate."""
    config = capture_config(churn_config, rate=rate)
    service = create_service(config, s3_client=aws)
    assert isinstance(service.capture, FirehoseCapture)
    service.capture._rng.seed(7)  # a fixed draw: the bounds below hold for this seed
    second = dict(RECORD, customer_id="C2")
    for number in range(400):
        event = predict_event({"records": [RECORD, second]})
        event["requestContext"]["requestId"] = f"request-{number}"
        status, _, _ = call(service, event)
        assert status == 200
    assert service.capture.flush(timeout=30)
    by_request: dict[str, list[str]] = {}
    for line in captured_lines(aws, config):
        by_request.setdefault(line["request_id"], []).append(line["id"])
    assert low <= len(by_request) <= high
    assert all(ids == ["C1", "C2"] for ids in by_request.values())


def test_no_stream_or_a_zero_rate_means_no_capture(aws, champion, churn_config):
    no_capture = capture_config(churn_config, rate=0.0)
    assert isinstance(create_service(no_capture, s3_client=aws).capture, NullCapture)
    assert build_service(churn_config, ModelHolder(None, 60.0)).capture.enabled is False


@pytest.mark.usefixtures("isolated_logging")
def test_handler_module_over_http_loads_from_s3_and_captures_to_firehose(
    monkeypatch, churn_config, churn_bundle
):
    """The Lambda module as deployed: config from the env, AWS over real HTTP (moto server)."""
    import importlib
    import sys

    from moto.server import ThreadedMotoServer

    from skylift.registry import ModelRegistry
    from tests.helpers import load_event

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=churn_config.storage.bucket)
        create_signing_key(churn_config)
        registry = ModelRegistry.from_config(churn_config, s3_client=s3)
        registry.promote(registry.register(churn_bundle).version or 0)
        boto3.client("firehose", region_name="us-east-1").create_delivery_stream(
            DeliveryStreamName=STREAM,
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/skylift-capture",
                "BucketARN": f"arn:aws:s3:::{churn_config.storage.bucket}",
                "Prefix": churn_config.storage.capture_prefix,
            },
        )
        monkeypatch.setenv("SKYLIFT_CONFIG", str(churn_config.config_path))
        monkeypatch.setenv("SKYLIFT_API__CAPTURE_STREAM", STREAM)
        monkeypatch.setenv("SKYLIFT_API__CAPTURE_SAMPLE_RATE", "1.0")
        sys.modules.pop("functions.score.app", None)
        module = importlib.import_module("functions.score.app")
        event = load_event("api_predict.json")
        reply = module.handler(event, None)
        assert reply["statusCode"] == 200, reply["body"]
        assert module.service.flush(timeout=10)
        lines = captured_lines(s3, churn_config)
        assert [line["id"] for line in lines] == ["C070000000", "C070000001", "C070000002"]
        assert {line["request_id"] for line in lines} == {event["requestContext"]["requestId"]}
    finally:
        sys.modules.pop("functions.score.app", None)
        server.stop()
