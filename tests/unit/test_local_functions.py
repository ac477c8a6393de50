"""In-process functions: lazy import with the function's environment, retry after a failed
import, a Lambda context per invocation; and provisioning from the topology (plan, apply,
idempotent) against mock_aws."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from moto import mock_aws

from skylift.local.functions import HandlerUnavailable, LocalFunction
from skylift.local.provision import Clients, names_for, plan, provision
from skylift.topology import describe
from tests.helpers import fake_package, spec_for

HANDLER = """
    import os
    SEEN_AT_IMPORT = os.environ.get("FAKE_SETTING")

    def handler(event, context):
        return {
            "import_env": SEEN_AT_IMPORT,
            "event": event,
            "function": context.function_name,
            "memory": context.memory_limit_in_mb,
            "remaining": context.get_remaining_time_in_millis(),
        }
"""


def test_environment_is_applied_before_the_import(tmp_path, monkeypatch):
    monkeypatch.delenv("FAKE_SETTING", raising=False)
    package = fake_package(tmp_path, monkeypatch, HANDLER)
    function = LocalFunction(spec_for(package), {"FAKE_SETTING": "from-spec"})
    assert not function.loaded  # nothing imported until the first event
    result = function.invoke({"n": 1})
    assert result["import_env"] == "from-spec"
    assert "FAKE_SETTING" not in os.environ  # set for the import and the invocation only
    assert result["event"] == {"n": 1}
    assert result["function"] == "batch"
    assert result["memory"] == 256
    assert 0 < result["remaining"] <= 30_000
    function.unload()


def test_missing_handler_is_a_clear_error_and_is_retried(tmp_path, monkeypatch, caplog):
    package = fake_package(tmp_path, monkeypatch, None)
    function = LocalFunction(spec_for(package), {})
    assert function.available() is False
    with pytest.raises(HandlerUnavailable, match=rf"{package}\.app\.handler cannot be imported"):
        function.invoke({})
    assert "cannot import handler" in caplog.text
    # The module appears later (another engineer's work lands): the next event imports it.
    (tmp_path / package / "app.py").write_text(textwrap.dedent(HANDLER))
    assert function.available() is True
    assert function.invoke({"n": 2})["event"] == {"n": 2}
    function.unload()


def test_findable_does_not_import_the_handler(tmp_path, monkeypatch):
    package = fake_package(tmp_path, monkeypatch, "raise RuntimeError('imported too early')\n")
    function = LocalFunction(spec_for(package), {})
    assert function.findable() is True
    assert not function.loaded
    missing = LocalFunction(spec_for(fake_package(tmp_path, monkeypatch, None)), {})
    assert missing.findable() is False


def test_handler_that_fails_on_import_names_the_error(tmp_path, monkeypatch):
    package = fake_package(tmp_path, monkeypatch, "raise RuntimeError('no model configured')\n")
    function = LocalFunction(spec_for(package), {})
    with pytest.raises(HandlerUnavailable, match="RuntimeError: no model configured"):
        function.load()


CONCURRENCY_PROBE = """
    import threading

    guard = threading.Lock()
    first_inside = threading.Event()
    overlapped = threading.Event()
    inside = most = 0

    def handler(event, context):
        global inside, most
        with guard:
            inside += 1
            most = max(most, inside)
            if inside > 1:
                overlapped.set()
        if event["n"] == 1:
            first_inside.set()
            overlapped.wait(timeout=1.0)  # time for an unserialised second call to come in
        with guard:
            inside -= 1
        return most
"""


def test_one_function_runs_one_event_at_a_time(tmp_path, monkeypatch):
    # The local gateway serves HTTP on threads; Lambda runs one event per execution
    # environment, and the score handler relies on it (no lock of its own).
    package = fake_package(tmp_path, monkeypatch, CONCURRENCY_PROBE)
    function = LocalFunction(spec_for(package), {})
    probe = sys.modules[function.load().__module__]
    first = threading.Thread(target=function.invoke, args=({"n": 1},))
    first.start()
    assert probe.first_inside.wait(timeout=10)
    second = threading.Thread(target=function.invoke, args=({"n": 2},))
    second.start()
    first.join(timeout=10)
    second.join(timeout=10)
    assert not probe.overlapped.is_set()
    assert probe.most == 1 and function.invocations == 2
    function.unload()


@pytest.fixture
def clients():
    with mock_aws():
        make = lambda service: boto3.client(service, region_name="us-east-1")  # noqa: E731
        yield Clients(
            s3=make("s3"),
            sqs=make("sqs"),
            firehose=make("firehose"),
            events=make("events"),
            kms=make("kms"),
        )


def test_provision_creates_the_topology_and_is_idempotent(churn_config, clients):
    topology = describe(churn_config)
    names = names_for(topology)
    done = provision(topology, clients)
    assert [a.kind for a in done] == [
        "create_bucket",
        "create_queue",
        "create_queue",
        "notify",
        "create_stream",
        "create_signing_key",
        "put_rule",
        "put_rule",
        "put_rule",  # the drift rule
    ]
    assert plan(topology, clients) == []  # a second run changes nothing
    drift = clients.events.describe_rule(Name=names.drift_rule)
    assert json.loads(drift["EventPattern"]) == {
        "source": [topology.drift_event_source],
        "detail-type": [topology.drift_event_detail_type],
    }
    assert drift["State"] == ("ENABLED" if topology.retrain_on_drift else "DISABLED")
    (target,) = clients.events.list_targets_by_rule(Rule=names.drift_rule)["Targets"]
    assert target["Arn"].endswith(f":function:{topology.drift_function}")
    key = clients.kms.describe_key(KeyId=churn_config.default_signing_alias)["KeyMetadata"]
    assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")

    url = clients.sqs.get_queue_url(QueueName=names.queue)["QueueUrl"]
    attributes = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["VisibilityTimeout"] == str(topology.queue_visibility_timeout_seconds)
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["maxReceiveCount"] == topology.max_receive_count
    assert redrive["deadLetterTargetArn"].endswith(f":{names.dlq}")

    notification = clients.s3.get_bucket_notification_configuration(Bucket=names.bucket)
    (queue_config,) = notification["QueueConfigurations"]
    assert queue_config["Events"] == ["s3:ObjectCreated:*"]
    assert queue_config["Filter"]["Key"]["FilterRules"] == [
        {"Name": "prefix", "Value": topology.incoming_prefix}
    ]
    stream = clients.firehose.describe_delivery_stream(DeliveryStreamName=names.stream)
    destination = stream["DeliveryStreamDescription"]["Destinations"][0]
    assert destination["ExtendedS3DestinationDescription"]["Prefix"] == topology.capture_prefix
    rule = clients.events.describe_rule(Name=names.rules["retrain"])
    assert rule["ScheduleExpression"] == churn_config.retrain.schedule
    # No TLS-only bucket policy locally: moto would deny every plain-HTTP request.
    with pytest.raises(clients.s3.exceptions.ClientError):
        clients.s3.get_bucket_policy(Bucket=names.bucket)


def test_provision_repairs_drifted_queue_settings(churn_config, clients):
    topology = describe(churn_config)
    provision(topology, clients)
    url = clients.sqs.get_queue_url(QueueName=topology.queue_name)["QueueUrl"]
    clients.sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "5"})
    assert [a.kind for a in plan(topology, clients)] == ["set_queue"]
    provision(topology, clients)
    assert plan(topology, clients) == []
    assert os.environ.get("AWS_ENDPOINT_URL") is None


ENV_HANDLER = """
    import os

    def handler(event, context):
        return {key: os.environ.get(key) for key in event["keys"]}
"""


def test_a_functions_environment_is_set_only_while_it_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("SHARED_SETTING", "the process's own")
    monkeypatch.delenv("ONLY_IN_A", raising=False)
    first = LocalFunction(
        spec_for(fake_package(tmp_path, monkeypatch, ENV_HANDLER)),
        {"SHARED_SETTING": "a's", "ONLY_IN_A": "yes"},
    )
    second = LocalFunction(
        spec_for(fake_package(tmp_path, monkeypatch, ENV_HANDLER)), {"SHARED_SETTING": "b's"}
    )
    keys = {"keys": ["SHARED_SETTING", "ONLY_IN_A"]}
    assert first.invoke(keys) == {"SHARED_SETTING": "a's", "ONLY_IN_A": "yes"}
    assert second.invoke(keys) == {"SHARED_SETTING": "b's", "ONLY_IN_A": None}
    assert os.environ["SHARED_SETTING"] == "the process's own"
    assert "ONLY_IN_A" not in os.environ
    first.unload()
    second.unload()


def test_functions_invoked_from_two_threads_each_see_their_own(tmp_path, monkeypatch):
    slow = """
        import os
        import time

        def handler(event, context):
            before = os.environ["WHO"]
            time.sleep(0.05)  # the other thread runs meanwhile, if it may
            return before, os.environ["WHO"]
    """
    monkeypatch.delenv("WHO", raising=False)
    functions = [
        LocalFunction(spec_for(fake_package(tmp_path, monkeypatch, slow)), {"WHO": who})
        for who in ("a", "b")
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda f: [f.invoke({}) for _ in range(5)], functions))
    assert results == [[("a", "a")] * 5, [("b", "b")] * 5]
    assert "WHO" not in os.environ
    for function in functions:
        function.unload()
