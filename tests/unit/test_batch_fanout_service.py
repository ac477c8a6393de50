"""The fan-out on (mocked) S3: the batch function starts one execution per object version, and
the state machine definition CDK deploys, run by the local runner, scores the object through
the Distributed Map into the single-invocation output; transient range errors are retried,
a permanent one fails the execution with a `failed` manifest naming the range."""

from __future__ import annotations

import json

import boto3
import pytest

from skylift.batch import BatchJob, output_keys
from skylift.batch.fanout import RangeFailedError
from skylift.batch.service import BatchService
from skylift.batch.state_machine import definition
from skylift.local.state_machine import LocalStateMachine
from skylift.topology import describe


@pytest.fixture(autouse=True)
def _one_blas_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture
def config(churn_config):
    batch = churn_config.batch.model_copy(
        update={"fanout_min_bytes": 1000, "fanout_range_bytes": 3000, "chunk_rows": 25}
    )
    return churn_config.model_copy(update={"batch": batch})


@pytest.fixture
def service(s3, registry, churn_bundle, config):
    registry.register(churn_bundle)
    registry.promote(1)
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.create_state_machine(
        name="fanout",
        definition=json.dumps(definition(describe(config))),
        roleArn="arn:aws:iam::123456789012:role/fanout",
    )["stateMachineArn"]
    return BatchService(config, s3, sfn=sfn, fanout_state_machine_arn=arn)


@pytest.fixture
def body(churn_frame) -> bytes:
    frame = churn_frame.head(300).drop(columns=["churned"]).astype(object)
    for position in range(0, len(frame), 9):
        frame.iat[position, 0] = f'C{position}\n"multi" line'
    for position in range(5, len(frame), 13):
        frame.iat[position, 3] = ""  # a missing required value: quarantined
    return frame.to_csv(index=False).encode()


def _run(service, s3, config, key, *, wrap=lambda handler: handler):
    bucket = config.storage.bucket
    head = s3.head_object(Bucket=bucket, Key=key)
    fanout = service.fanout()
    name = fanout.start(service.sfn, service.fanout_state_machine_arn, bucket, key, head)
    document = json.loads(
        service.sfn.describe_execution(
            executionArn=service.fanout_state_machine_arn.replace(":stateMachine:", ":execution:")
            + f":{name}"
        )["input"]
    )

    def handler(function: str, payload: dict) -> dict:
        step = payload["step"]
        if step == "plan":
            return fanout.plan(payload["input"])
        if step == "range":
            return fanout.score(payload["job"], payload["range"])
        return getattr(fanout, step)(payload["job"])

    machine = LocalStateMachine(
        definition(describe(config)), wrap(handler), s3, workers=2, delay_scale=0
    )
    return machine.run(document)


def test_large_object_fans_out_once_per_version(service, s3, config, body):
    key = "incoming/big.csv"
    s3.put_object(Bucket=config.storage.bucket, Key=key, Body=body)
    assert service.score_object(config.storage.bucket, key, None) is None  # started, returned
    assert service.score_object(config.storage.bucket, key, None) is None  # duplicate event
    executions = service.sfn.list_executions(stateMachineArn=service.fanout_state_machine_arn)
    assert len(executions["executions"]) == 1
    keys = output_keys(config, key)
    assert "Contents" not in s3.list_objects_v2(
        Bucket=config.storage.bucket, Prefix=keys.predictions
    )


def test_small_object_is_scored_in_place(service, s3, config, body):
    key = "incoming/small.csv"
    small = b"\n".join(body.split(b"\n")[:5]) + b"\n"
    assert len(small) < 1000
    s3.put_object(Bucket=config.storage.bucket, Key=key, Body=small)
    manifest = service.score_object(config.storage.bucket, key, None)
    assert manifest is not None and manifest.status == "succeeded" and manifest.rows_read == 3


def test_state_machine_output_equals_single_invocation(service, s3, config, body):
    bucket = config.storage.bucket
    s3.put_object(Bucket=bucket, Key="incoming/one.csv", Body=body)
    s3.put_object(Bucket=bucket, Key="incoming/many.csv", Body=body)
    single = BatchJob(config, service.scorer).score_s3_object(s3, bucket, "incoming/one.csv")
    execution = _run(service, s3, config, "incoming/many.csv")
    assert execution.status == "SUCCEEDED", execution
    one, many = output_keys(config, "incoming/one.csv"), output_keys(config, "incoming/many.csv")
    for a, b in ((one.predictions, many.predictions), (one.quarantine, many.quarantine)):
        assert s3.get_object(Bucket=bucket, Key=b)["Body"].read() == (
            s3.get_object(Bucket=bucket, Key=a)["Body"].read()
        )
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=many.manifest)["Body"].read())
    assert manifest["status"] == "succeeded"
    assert len(manifest["ranges"]) >= 5
    assert manifest["rows_read"] == single.rows_read == 300
    assert manifest["rows_read"] == manifest["rows_scored"] + manifest["rows_quarantined"]
    assert sum(r["rows_read"] for r in manifest["ranges"]) == manifest["rows_read"]
    # The staging objects are gone once committed.
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="batch-fanout/")


def test_transient_range_error_is_retried(service, s3, config, body):
    bucket = config.storage.bucket
    s3.put_object(Bucket=bucket, Key="incoming/flaky.csv", Body=body)
    failed_once: set[int] = set()

    def wrap(handler):
        def flaky(function: str, payload: dict) -> dict:
            if payload["step"] == "range" and payload["range"]["index"] == 2 and not failed_once:
                failed_once.add(2)
                raise ConnectionError("connection reset")
            return handler(function, payload)

        return flaky

    execution = _run(service, s3, config, "incoming/flaky.csv", wrap=wrap)
    assert execution.status == "SUCCEEDED", execution
    ranges = json.loads(
        s3.get_object(Bucket=bucket, Key=output_keys(config, "incoming/flaky.csv").manifest)[
            "Body"
        ].read()
    )["ranges"]
    assert execution.attempts["ScoreRange"] == len(ranges) + 1  # one retry, no more
    assert failed_once == {2}
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=output_keys(config, "incoming/flaky.csv").manifest)[
            "Body"
        ].read()
    )
    assert manifest["status"] == "succeeded" and manifest["rows_read"] == 300


def test_permanent_range_error_fails_the_execution_naming_the_range(
    service, s3, config, body, monkeypatch
):
    bucket = config.storage.bucket
    s3.put_object(Bucket=bucket, Key="incoming/bad.csv", Body=body)
    import skylift.batch.fanout_service as module

    real_score_range = module.score_range
    calls: list[int] = []

    def score_range(job, scorer, stream, key, byte_range, sink, staging):
        calls.append(byte_range.index)
        if byte_range.index == 3:
            raise RangeFailedError(f"range 3 of {key}: unreadable")
        return real_score_range(job, scorer, stream, key, byte_range, sink, staging)

    monkeypatch.setattr(module, "score_range", score_range)
    execution = _run(service, s3, config, "incoming/bad.csv")
    assert execution.status == "FAILED"
    assert calls.count(3) == 1  # permanent: not retried
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=output_keys(config, "incoming/bad.csv").manifest)[
            "Body"
        ].read()
    )
    assert manifest["status"] == "failed"
    assert manifest["failed_range"] == 3
    assert manifest["reason"] == "range 3 of incoming/bad.csv: unreadable"
    assert execution.error == "BatchFanoutFailed"
