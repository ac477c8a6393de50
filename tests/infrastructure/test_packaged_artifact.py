"""The deployable artifact needs nothing else: each handler runs in an isolated interpreter
(`python -I -S`: no site-packages, no user paths) whose path holds only a layer and the code
asset, against a moto server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import load_event

RUNNER = textwrap.dedent(
    """
    import json, sys
    layer, code, module, event_path = sys.argv[1:5]
    sys.path[:0] = [layer, code]
    handler = __import__(module, fromlist=["handler"]).handler
    reply = handler(json.load(open(event_path)), None)
    banned = [m for m in ("moto", "requests", "rich", "click", "pytest") if m in sys.modules]
    print("RESULT " + json.dumps({"reply": reply, "banned": banned, "paths": [p for p in sys.path if "site-packages" in p]}, default=str))
    """
)


@pytest.fixture(scope="module")
def artifact(churn_config):
    from infrastructure.packaging import stage_code_asset
    from layers.local import assemble_local_layer

    return assemble_local_layer(), stage_code_asset(churn_config)


@pytest.fixture(scope="module")
def aws(churn_config, churn_frame):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=churn_config.storage.bucket)
    s3.put_object(
        Bucket=churn_config.storage.bucket,
        Key="training/churn.csv",
        Body=churn_frame.to_csv(index=False).encode(),
    )
    yield endpoint, s3
    server.stop()


def run(artifact, endpoint, module, event, tmp_path, bucket):
    layer, code = artifact
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event))
    env = {
        "PATH": "/usr/bin:/bin",
        "SKYLIFT_CONFIG": str(code / "skylift.toml"),
        "SKYLIFT_STORAGE__BUCKET": bucket,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "skylift",
        "POWERTOOLS_METRICS_NAMESPACE": "Skylift",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", RUNNER, str(layer), str(code), module, str(event_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=code,
        timeout=120,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    outcome = json.loads(lines[-1][len("RESULT ") :])
    assert outcome["banned"] == [] and outcome["paths"] == []
    return outcome["reply"]


def test_every_handler_runs_from_layer_and_code_alone(
    artifact, aws, churn_config, churn_frame, tmp_path
):
    endpoint, s3 = aws
    bucket = churn_config.storage.bucket
    retrained = run(
        artifact,
        endpoint,
        "functions.retrain.app",
        load_event("eventbridge_retrain_schedule.json"),
        tmp_path,
        bucket,
    )
    assert retrained["status"] == "succeeded" and retrained["promoted"]

    health = run(
        artifact, endpoint, "functions.score.app", load_event("api_health.json"), tmp_path, bucket
    )
    assert health["statusCode"] == 200, health
    predicted = run(
        artifact, endpoint, "functions.score.app", load_event("api_predict.json"), tmp_path, bucket
    )
    assert predicted["statusCode"] == 200 and json.loads(predicted["body"])["predictions"]

    key = "incoming/november/customers 2026-11 été.csv"
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=churn_frame.head(20).drop(columns=["churned"]).to_csv(index=False).encode(),
    )
    batch = run(
        artifact,
        endpoint,
        "functions.batch.app",
        load_event("sqs_s3_object_created.json"),
        tmp_path,
        bucket,
    )
    assert batch == {"batchItemFailures": []}
    manifest = json.loads(
        s3.get_object(
            Bucket=bucket, Key="predictions/november/customers 2026-11 été.csv.manifest.json"
        )["Body"].read()
    )
    assert manifest["rows_scored"] == 20

    monitored = run(
        artifact,
        endpoint,
        "functions.monitor.app",
        load_event("eventbridge_monitor_schedule.json"),
        tmp_path,
        bucket,
    )
    assert monitored["report_key"].startswith("reports/monitoring/")
