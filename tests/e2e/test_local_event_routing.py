"""The local stack's event routing, end to end with stand-in handlers of our own: S3 put ->
notification -> SQS -> the batch function (real SQS event, URL-encoded key, partial batch
response), schedules fired on demand as EventBridge Scheduled Events, and
``skylift local trigger`` reaching the running stack through its control endpoint.

The real functions/batch, retrain and monitor handlers are other issues; this module pins the
plumbing so it holds whatever they do.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn" / "skylift.toml"

FAKE_BATCH = """
    import json
    import os
    from urllib.parse import unquote_plus

    import boto3

    S3 = boto3.client("s3")  # module scope, as a real handler keeps it: env must be set by now


    def handler(event, context):
        failures = []
        for record in event["Records"]:
            body = json.loads(record["body"])
            if body.get("Event") == "s3:TestEvent":
                continue
            for s3_record in body["Records"]:
                key = unquote_plus(s3_record["s3"]["object"]["key"])
                if "fail" in key:
                    failures.append({"itemIdentifier": record["messageId"]})
                    continue
                seen = {
                    "key": key,
                    "event_name": s3_record["eventName"],
                    "event_source": record["eventSource"],
                    "receive_count": record["attributes"]["ApproximateReceiveCount"],
                    "function": context.function_name,
                    "bucket_env": os.environ["SKYLIFT_STORAGE__BUCKET"],
                }
                S3.put_object(
                    Bucket=os.environ["SKYLIFT_STORAGE__BUCKET"],
                    Key="predictions/" + key[len("incoming/"):] + ".seen.json",
                    Body=json.dumps(seen).encode(),
                )
        return {"batchItemFailures": failures}
"""

FAKE_SCHEDULED = """
    import os


    def handler(event, context):
        return {
            "source": event["source"],
            "detail_type": event["detail-type"],
            "resources": event["resources"],
            "function": context.function_name,
            "config": os.environ["SKYLIFT_CONFIG"],
            "remaining_ms": context.get_remaining_time_in_millis(),
        }
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("local-routing")
    shutil.copy(EXAMPLE, root / "skylift.toml")
    package = root / f"fake_handlers_{uuid.uuid4().hex[:8]}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "batch.py").write_text(textwrap.dedent(FAKE_BATCH))
    (package / "scheduled.py").write_text(textwrap.dedent(FAKE_SCHEDULED))
    return root


@pytest.fixture(scope="module")
def stack(project):
    from skylift.config import load_config
    from skylift.local.stack import LocalStack

    package = next(project.glob("fake_handlers_*")).name
    sys.path.insert(0, str(project))
    config = load_config(project / "skylift.toml")
    try:
        with LocalStack(
            config,
            clocks=False,
            handlers={
                "batch": f"{package}.batch.handler",
                "retrain": f"{package}.scheduled.handler",
                "monitor": f"{package}.scheduled.handler",
            },
        ) as running:
            yield running
    finally:
        sys.path.remove(str(project))


def test_s3_put_reaches_the_batch_function_through_sqs(stack):
    s3 = stack.client("s3")
    key = "incoming/routing/customers 2026.csv"  # the space arrives URL-encoded
    s3.put_object(Bucket=stack.names.bucket, Key=key, Body=b"a,b\n1,2\n")
    seen = stack.wait_for_json("predictions/routing/customers 2026.csv.seen.json", timeout=20)
    assert seen == {
        "key": key,
        "event_name": "ObjectCreated:Put",
        "event_source": "aws:sqs",
        "receive_count": "1",
        "function": "batch",
        "bucket_env": stack.names.bucket,
    }
    stack.wait_until_queue_empty(timeout=10)


def test_objects_outside_the_incoming_prefix_raise_no_event(stack):
    s3 = stack.client("s3")
    assert stack.poller is not None
    batches = stack.poller.batches
    s3.put_object(Bucket=stack.names.bucket, Key="training/ignored.csv", Body=b"x\n")
    s3.put_object(Bucket=stack.names.bucket, Key="labels/ignored.csv", Body=b"x\n")
    s3.put_object(Bucket=stack.names.bucket, Key="incomingX/ignored.csv", Body=b"x\n")
    # A matching key put after them: once it is handled and the queue is empty, any event
    # the others raised would have been handled too (moto enqueues notifications on put).
    marker = f"incoming/routing/marker-{uuid.uuid4().hex[:8]}.csv"
    s3.put_object(Bucket=stack.names.bucket, Key=marker, Body=b"a\n1\n")
    stack.wait_for_json(f"predictions/{marker[len('incoming/') :]}.seen.json", timeout=20)
    stack.wait_until_queue_empty(timeout=10)
    assert stack.poller.batches == batches + 1  # the marker's, and nothing else


def test_reported_failure_stays_on_the_queue(stack):
    sqs = stack.client("sqs")
    url = sqs.get_queue_url(QueueName=stack.names.queue)["QueueUrl"]
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.names.bucket, Key="incoming/routing/will-fail.csv", Body=b"x\n")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        if attributes["ApproximateNumberOfMessagesNotVisible"] == "1":
            break
        time.sleep(0.2)
    else:
        pytest.fail("the failed message was not left in flight on the queue")
    assert stack.poller is not None and stack.poller.failed >= 1


def test_trigger_runs_the_schedule_as_an_eventbridge_event(stack):
    result: dict[str, Any] = stack.trigger("retrain")
    assert result["source"] == "aws.events"
    assert result["detail_type"] == "Scheduled Event"
    assert result["resources"] == [
        f"arn:aws:events:us-east-1:123456789012:rule/{stack.names.rules['retrain']}"
    ]
    assert result["function"] == "retrain"
    assert Path(result["config"]).is_absolute() and Path(result["config"]).exists()
    assert 0 < result["remaining_ms"] <= stack.config.retrain.timeout_seconds * 1000


def test_cli_trigger_reaches_the_running_stack(stack, project):
    from skylift.cli import cli
    from skylift.local.state import STATE_FILE

    stack.state().write(project / STATE_FILE)
    result = CliRunner().invoke(
        cli, ["--config", str(project / "skylift.toml"), "local", "trigger", "monitor"]
    )
    assert result.exit_code == 0, result.output
    assert "monitor ran in" in result.output
    assert '"source": "aws.events"' in result.output


def test_cli_trigger_without_a_running_stack_says_so(tmp_path):
    from skylift.cli import cli

    shutil.copy(EXAMPLE, tmp_path / "skylift.toml")
    result = CliRunner().invoke(
        cli, ["--config", str(tmp_path / "skylift.toml"), "local", "trigger", "monitor"]
    )
    assert result.exit_code == 2
    assert "no running local stack found" in result.output


def test_stop_closes_the_ports_and_leaves_the_environment_as_it_was(project, monkeypatch):
    import requests

    from skylift.config import load_config
    from skylift.local.stack import LocalStack

    monkeypatch.syspath_prepend(str(project))
    package = next(project.glob("fake_handlers_*")).name
    config = load_config(project / "skylift.toml")
    before = dict(os.environ)
    handlers = {"monitor": f"{package}.scheduled.handler"}
    with LocalStack(config, poll=False, clocks=False, handlers=handlers) as other:
        api_url, endpoint = other.api_url, other.endpoint_url
        assert requests.get(f"{api_url}/health", timeout=5).status_code == 403
        assert other.trigger("monitor")["function"] == "monitor"
        # The functions' variables were set while they ran, not left in the process.
        leaked = {"SKYLIFT_CONFIG", "SKYLIFT_STORAGE__BUCKET", "AWS_LAMBDA_FUNCTION_NAME"}
        assert leaked.isdisjoint(set(os.environ) - set(before))
        assert os.environ["AWS_ENDPOINT_URL"] == endpoint  # the connection, for the stack's life
    for url in (f"{api_url}/health", endpoint):
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=2)
    assert dict(os.environ) == before


def test_local_up_runs_in_the_foreground_and_stops_cleanly_on_ctrl_c(tmp_path):
    import signal
    import subprocess

    import requests

    shutil.copy(EXAMPLE, tmp_path / "skylift.toml")
    state_file = tmp_path / ".skylift" / "local.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from skylift.cli import main; main()",
            "--config",
            str(tmp_path / "skylift.toml"),
            "local",
            "up",
            "--no-clock",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(EXAMPLE.parents[2])},
    )
    try:
        deadline = time.monotonic() + 30
        state = None
        while state is None and process.poll() is None:
            assert time.monotonic() < deadline, "no complete state file within 30 s"
            try:
                state = json.loads(state_file.read_text())
            except (FileNotFoundError, ValueError):  # not there yet, or being written
                time.sleep(0.1)
        assert state is not None, process.stdout.read() if process.stdout else ""
        assert state["pid"] == process.pid
        response = requests.get(f"{state['api_url']}/health", timeout=10)
        assert response.status_code == 403  # no key
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert state["api_url"] in output and state["endpoint_url"] in output
    assert "export AWS_ENDPOINT_URL=" in output
    assert "local stack stopped" in output
    assert "Traceback" not in output
    assert not state_file.exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(state["endpoint_url"], timeout=2)
