"""The local stack end to end: real HTTP to the gateway, boto3 against the moto server, S3 ->
SQS -> batch function, schedules on demand. One stack for the module (started once)."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pandas as pd
import pytest
import requests

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(churn_config):
    from churn_model.data import generate_churn

    from skylift.local.stack import LocalStack
    from skylift.registry import ModelRegistry
    from skylift.training import train_and_register

    with LocalStack(churn_config, clocks=False) as running:
        s3 = running.client("s3")
        key = f"{churn_config.storage.training_prefix}churn.csv"
        body = generate_churn(2000, seed=0).to_csv(index=False).encode()
        s3.put_object(Bucket=churn_config.storage.bucket, Key=key, Body=body)
        registry = ModelRegistry.from_config(churn_config, s3_client=s3)
        train_and_register(
            churn_config,
            registry,
            f"s3://{churn_config.storage.bucket}/{key}",
            promote=True,
            actor="e2e",
        )
        yield running


@pytest.fixture(scope="module")
def s3(stack):
    return stack.client("s3")


def call(stack: Any, method: str, path: str, key: str | None = "use", **kwargs: Any):
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers["x-api-key"] = stack.api_key if key == "use" else key
    return requests.request(method, f"{stack.api_url}{path}", headers=headers, timeout=30, **kwargs)


def records(rows: int = 5, seed: int = 7) -> list[dict[str, Any]]:
    from churn_model.data import generate_churn

    frame = generate_churn(rows, seed=seed).drop(columns=["churned"])
    return json.loads(frame.to_json(orient="records"))  # type: ignore[no-any-return,unused-ignore]


def test_health_answers_through_the_gateway(stack):
    response = call(stack, "GET", "/health")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "ok"
    assert body["model"] == "churn"
    assert body["model_version"] == 1


def test_predict_scores_records_over_http(stack):
    sent = records(5)
    response = call(stack, "POST", "/predict", json={"records": sent})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["predictions"]) == 5
    assert body["model_version"] == 1
    assert {p["id"] for p in body["predictions"]} == {r["customer_id"] for r in sent}


def test_a_gzip_compressed_request_is_scored(stack):
    import gzip

    sent = records(3)
    response = call(
        stack,
        "POST",
        "/predict",
        data=gzip.compress(json.dumps({"records": sent}).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert [p["id"] for p in response.json()["predictions"]] == [r["customer_id"] for r in sent]


def test_predict_accepts_mlflow_dataframe_split(stack):
    frame = pd.DataFrame(records(3, seed=3))
    split = json.loads(frame.to_json(orient="split", index=False))
    response = call(stack, "POST", "/predict", json={"dataframe_split": split})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 3


def test_missing_api_key_is_403_forbidden(stack):
    response = call(stack, "GET", "/health", key=None)
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}


def test_wrong_api_key_is_403_forbidden(stack):
    response = call(stack, "POST", "/predict", key="not-the-key", json={"records": records(1)})
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}


def test_bad_record_is_400_with_field_details(stack):
    response = call(stack, "POST", "/predict", json={"records": [{"tenure_months": "twelve"}]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert {"record": 0, "field": "tenure_months"}.items() <= error["details"][0].items()
    assert "record(s) do not fit the schema" in error["message"]


def test_invalid_json_is_400_not_500(stack):
    response = call(
        stack,
        "POST",
        "/predict",
        data=b'{"records": [',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert error["message"].startswith("the body is not valid JSON")


def test_unknown_path_is_the_functions_own_json_404(stack):
    response = call(stack, "GET", "/no/such/route")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_wrong_method_on_a_declared_route_is_the_functions_405(stack):
    # /predict has POST and, beside it, ANY: the function answers as the README promises.
    response = call(stack, "GET", "/predict")
    assert response.status_code == 405, response.text
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["Allow"] == "POST"


def test_sampled_requests_are_captured_through_firehose_to_s3(stack, s3, churn_config):
    assert call(stack, "POST", "/predict", json={"records": records(2, seed=9)}).ok
    bucket, prefix = churn_config.storage.bucket, churn_config.storage.capture_prefix
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0):
            return
        time.sleep(0.25)
    pytest.fail(f"nothing captured under s3://{bucket}/{prefix} within 15 s")


def test_trigger_unknown_schedule_is_a_clear_error(stack):
    from skylift.local.scheduler import UnknownScheduleError

    with pytest.raises(UnknownScheduleError, match="known: monitor, retrain"):
        stack.trigger("nightly")


def test_control_endpoint_rejects_a_wrong_token(stack):
    response = requests.post(
        f"{stack.control_url}/trigger/monitor",
        headers={"x-skylift-control-token": "guess"},
        timeout=10,
    )
    assert response.status_code == 403


def test_moto_holds_the_provisioned_wiring(stack, churn_config):
    wiring = stack.wiring()
    assert wiring["notifications"] == [
        {"events": ["s3:ObjectCreated:*"], "prefix": churn_config.storage.incoming_prefix}
    ]
    assert wiring["queue"]["max_receive_count"] == churn_config.batch.max_receive_count
    assert ("POST", "/predict") in wiring["routes"]


def put_csv(s3: Any, bucket: str, key: str, frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue().encode())


def manifest_key(config: Any, incoming_key: str) -> str:
    relative = incoming_key[len(config.storage.incoming_prefix) :]
    return f"{config.storage.predictions_prefix}{relative}.manifest.json"


def test_csv_put_in_incoming_is_scored_via_sqs(stack, s3, churn_config):
    from churn_model.data import generate_churn

    key = f"{churn_config.storage.incoming_prefix}e2e/customers 1.csv"  # a space: URL-encoded
    put_csv(
        s3, churn_config.storage.bucket, key, generate_churn(300, seed=21).drop(columns=["churned"])
    )
    manifest = stack.wait_for_json(manifest_key(churn_config, key), timeout=30)
    assert manifest["rows_read"] == 300
    assert manifest["rows_scored"] + manifest.get("rows_quarantined", 0) == 300
    stack.wait_until_queue_empty(timeout=15)


def test_malformed_batch_file_is_reported_not_retried_forever(stack, s3, churn_config):
    key = f"{churn_config.storage.incoming_prefix}e2e/garbage.csv"
    s3.put_object(
        Bucket=churn_config.storage.bucket,
        Key=key,
        Body=b"this,is,not\nthe,churn,schema\n\x00\x01\x02",
    )
    # The batch function must answer for the file (a manifest saying why, or quarantine) and
    # leave nothing in flight: a crash would keep the message invisible and on the queue.
    stack.wait_until_queue_empty(timeout=30)
    bucket = churn_config.storage.bucket
    reported = [
        item["Key"]
        for prefix in (
            churn_config.storage.predictions_prefix,
            churn_config.storage.quarantine_prefix,
        )
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}e2e/garbage").get(
            "Contents", []
        )
    ]
    assert reported, "the malformed file left no manifest or quarantine record"


def test_duplicate_upload_is_not_rescored(stack, s3, churn_config):
    from churn_model.data import generate_churn

    key = f"{churn_config.storage.incoming_prefix}e2e/duplicate.csv"
    frame = generate_churn(100, seed=33).drop(columns=["churned"])
    put_csv(s3, churn_config.storage.bucket, key, frame)
    result_key = manifest_key(churn_config, key)
    stack.wait_for_json(result_key, timeout=30)
    first = s3.head_object(Bucket=churn_config.storage.bucket, Key=result_key)["ETag"]
    put_csv(s3, churn_config.storage.bucket, key, frame)  # the same bytes again
    stack.wait_until_queue_empty(timeout=30)
    again = s3.head_object(Bucket=churn_config.storage.bucket, Key=result_key)["ETag"]
    assert again == first
