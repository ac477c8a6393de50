"""The synthesized stack: every resource the design asks for, with its key properties."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Match

from tests.helpers import ROOT


def resources(template_json, kind):
    return {k: v for k, v in template_json["Resources"].items() if v["Type"] == kind}


def test_data_bucket_is_encrypted_versioned_private_logged_with_lifecycle(template, template_json):
    buckets = resources(template_json, "AWS::S3::Bucket")
    data = next(b for b in buckets.values() if "LoggingConfiguration" in b["Properties"])
    props = data["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert (
        props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"
        ]["SSEAlgorithm"]
        == "AES256"
    )
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    prefixes = {r.get("Prefix") for r in props["LifecycleConfiguration"]["Rules"]}
    assert {"capture/", "predictions/", "quarantine/"} <= prefixes
    assert len(buckets) == 2  # data + access logs


def test_every_bucket_refuses_plain_http(template_json):
    policies = resources(template_json, "AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_api_routes_require_api_keys_and_have_a_usage_plan(template, template_json, churn_config):
    methods = resources(template_json, "AWS::ApiGateway::Method")
    assert {m["Properties"]["HttpMethod"] for m in methods.values()} == {"POST", "GET", "ANY"}
    assert all(m["Properties"]["ApiKeyRequired"] for m in methods.values())
    template.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "Throttle": {
                "RateLimit": churn_config.api.throttle_rate,
                "BurstLimit": churn_config.api.throttle_burst,
            },
            "Quota": {"Limit": churn_config.api.quota_per_day, "Period": "DAY"},
        },
    )
    template.resource_count_is("AWS::ApiGateway::ApiKey", 1)
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
            "TracingEnabled": True,
        },
    )


def test_the_rest_api_passes_every_body_through_as_sent(template_json):
    """binaryMediaTypes "*/*": a gzip-compressed JSON body reaches the function base64-encoded,
    as the local gateway delivers it, instead of being decoded as UTF-8 text on the way."""
    from skylift.topology import API_BINARY_MEDIA_TYPES

    (api,) = resources(template_json, "AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["BinaryMediaTypes"] == list(API_BINARY_MEDIA_TYPES) == ["*/*"]


def test_batch_queue_dlq_notification_and_partial_failures(template, template_json, churn_config):
    queues = resources(template_json, "AWS::SQS::Queue")
    main = next(q for q in queues.values() if "RedrivePolicy" in q["Properties"])
    assert (
        main["Properties"]["RedrivePolicy"]["maxReceiveCount"]
        == churn_config.batch.max_receive_count
    )
    assert main["Properties"]["VisibilityTimeout"] == 6 * churn_config.batch.timeout_seconds
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"FunctionResponseTypes": ["ReportBatchItemFailures"], "BatchSize": 1},
    )
    notification = next(iter(resources(template_json, "Custom::S3BucketNotifications").values()))
    queue_config = notification["Properties"]["NotificationConfiguration"]["QueueConfigurations"][0]
    assert queue_config["Filter"]["Key"]["FilterRules"] == [
        {"Name": "prefix", "Value": "incoming/"}
    ]


def test_schedules_capture_stream_and_drift_rule(template, template_json, churn_config):
    rules = resources(template_json, "AWS::Events::Rule")
    expressions = {r["Properties"].get("ScheduleExpression") for r in rules.values()}
    assert {churn_config.retrain.schedule, churn_config.monitor.schedule} <= expressions
    drift = next(
        r
        for r in rules.values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["skylift.monitor"]
    )
    assert drift["Properties"]["EventPattern"] == {
        "source": ["skylift.monitor"],
        "detail-type": ["Model Drift Detected"],
    }
    assert drift["Properties"]["State"] == (
        "ENABLED" if churn_config.monitor.retrain_on_drift else "DISABLED"
    )
    template.has_resource_properties(
        "AWS::KinesisFirehose::DeliveryStream",
        {
            "DeliveryStreamName": churn_config.api.capture_stream,
            "ExtendedS3DestinationConfiguration": Match.object_like({"Prefix": "capture/"}),
        },
    )


def test_alarms_notify_a_topic_and_a_dashboard_exists(template, template_json):
    alarms = resources(template_json, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 8  # main's seven and the batch fan-out's
    names = {a["Properties"].get("MetricName") for a in alarms.values()}
    assert {
        "5XXError",
        "ApproximateNumberOfMessagesVisible",
        "DriftMaxPSI",
        "Errors",
        "ExecutionsFailed",  # the batch fan-out
    } <= names
    assert all(a["Properties"]["AlarmActions"] for a in alarms.values())
    template.resource_count_is("AWS::SNS::Topic", 1)
    dashboard = json.dumps(
        next(iter(resources(template_json, "AWS::CloudWatch::Dashboard").values()))
    )
    for metric in (
        "Latency",
        "DriftMaxPSI",
        "FeaturePSI",
        "LiveAccuracy",
        "ApproximateNumberOfMessagesVisible",
    ):
        assert metric in dashboard


def test_candidate_errors_alarm_aborts_through_the_monitor(template_json):
    """The canary's errors (EMF VersionErrors, role=candidate) trip an alarm whose state
    change EventBridge routes to the monitor function, which aborts the candidate."""
    alarms = resources(template_json, "AWS::CloudWatch::Alarm")
    logical_id, alarm = next(
        (k, a) for k, a in alarms.items() if a["Properties"].get("MetricName") == "VersionErrors"
    )
    props = alarm["Properties"]
    assert {"Name": "role", "Value": "candidate"} in props["Dimensions"]
    assert (props["Statistic"], props["Period"], props["Threshold"]) == ("Sum", 60, 5)
    rules = resources(template_json, "AWS::Events::Rule")
    rule = next(
        r
        for r in rules.values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.cloudwatch"]
    )
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    assert pattern["detail"] == {"state": {"value": ["ALARM"]}}
    assert pattern["resources"] == [{"Fn::GetAtt": [logical_id, "Arn"]}]
    (target,) = rule["Properties"]["Targets"]
    monitor = next(
        k
        for k, f in resources(template_json, "AWS::Lambda::Function").items()
        if f["Properties"].get("Handler") == "functions.monitor.app.handler"
    )
    assert target["Arn"] == {"Fn::GetAtt": [monitor, "Arn"]}
    assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] == 3
    permissions = [
        p["Properties"]
        for p in resources(template_json, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
        and p["Properties"]["FunctionName"] == {"Fn::GetAtt": [monitor, "Arn"]}
    ]
    assert all("SourceArn" in p for p in permissions) and len(permissions) >= 2


def _statements(template_json, function_prefix):
    """Every statement of every policy attached to the function's role."""
    function = next(
        f
        for k, f in resources(template_json, "AWS::Lambda::Function").items()
        if k.startswith(f"Functions{function_prefix}") and "Handler" in f["Properties"]
    )
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in resources(template_json, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _s3_objects(statements, action):
    found = []
    for statement in statements:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        if action in actions:
            resources_ = (
                statement["Resource"]
                if isinstance(statement["Resource"], list)
                else [statement["Resource"]]
            )
            found += [
                r["Fn::Join"][1][-1] for r in resources_ if isinstance(r, dict) and "Fn::Join" in r
            ]
    return sorted(found)


@pytest.mark.parametrize(
    ("function", "reads", "writes"),
    [
        ("Score", ["/models/churn/*"], []),
        (
            "Batch",
            ["/incoming/*", "/models/churn/*", "/predictions/*"],
            ["/predictions/*", "/quarantine/*"],
        ),
        ("Retrain", ["/models/churn/*", "/training/*"], ["/models/churn/*", "/reports/retrain/*"]),
        (
            "Monitor",
            [
                "/capture/*",
                "/incoming/*",
                "/labels/*",
                "/models/churn/*",
                "/predictions/*",
                "/reports/*",
            ],
            ["/models/churn/aliases/*", "/reports/monitoring/*", "/reports/rollout/*"],
        ),
    ],
)
def test_each_function_gets_only_its_prefixes(template_json, function, reads, writes):
    statements = _statements(template_json, function)
    assert _s3_objects(statements, "s3:GetObject") == reads
    assert _s3_objects(statements, "s3:PutObject") == writes
    flat = json.dumps(statements)
    assert '"s3:*"' not in flat and "s3:DeleteObject" not in flat


def test_functions_run_the_topology_handlers_with_its_environment(template_json):
    functions = {
        f["Properties"]["Handler"]: f["Properties"]
        for f in resources(template_json, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler", "").startswith("functions.")
    }
    assert set(functions) == {
        f"functions.{n}.app.handler" for n in ("score", "batch", "retrain", "monitor")
    } | {"functions.batch.fanout.handler"}
    for props in functions.values():
        env = props["Environment"]["Variables"]
        assert env["SKYLIFT_CONFIG"] == "skylift.toml" and "SKYLIFT_STORAGE__BUCKET" in env
        assert props["TracingConfig"] == {"Mode": "Active"} and len(props["Layers"]) == 1


def test_cfn_lint_finds_no_errors(template_json, tmp_path):
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template_json))
    result = subprocess.run(
        [sys.executable, "-m", "cfnlint", "--format", "parseable", str(path)],
        capture_output=True,
        text=True,
    )
    errors = [line for line in result.stdout.splitlines() if ":E" in line]
    assert errors == [], result.stdout


def test_cdk_nag_fails_the_synth_on_an_unacknowledged_finding(churn_config):
    """The zero-findings synth above is meaningful: a new wildcard grant breaks it."""
    from aws_cdk import aws_iam as iam

    from infrastructure.app import build_app

    app, stack = build_app(churn_config, layer_dir=Path(__file__).parent, outdir=None)
    stack.functions.functions["score"].add_to_role_policy(
        iam.PolicyStatement(actions=["s3:*"], resources=["*"])
    )
    with pytest.raises(Exception, match=r"AwsSolutions-IAM5\[Action::s3:\*\]"):
        app.synth()


def test_score_function_starts_from_a_snapshot_behind_its_alias(template_json):
    functions = resources(template_json, "AWS::Lambda::Function")
    snap = {k: f["Properties"].get("SnapStart") for k, f in functions.items()}
    score = next(k for k in functions if k.startswith("FunctionsScore"))
    assert snap.pop(score) == {"ApplyOn": "PublishedVersions"}
    assert set(snap.values()) == {None}  # batch, retrain, monitor: no snapshot to pay for
    (alias_id, alias), *others = resources(template_json, "AWS::Lambda::Alias").items()
    assert not others and alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionName"] == {"Ref": score}
    # API Gateway invokes the alias (the published, snapshotted version), never $LATEST.
    for method in resources(template_json, "AWS::ApiGateway::Method").values():
        uri = json.dumps(method["Properties"]["Integration"]["Uri"])
        assert alias_id in uri and score not in uri


@pytest.mark.parametrize("variant", ["iam", "image"])
def test_config_switches_auth_and_packaging(churn_config, variant):
    from infrastructure.app import stack_name, synth_templates

    if variant == "iam":
        config = churn_config.model_copy(
            update={"api": churn_config.api.model_copy(update={"auth": "iam"})}
        )
    else:
        config = churn_config.model_copy(
            update={"deploy": churn_config.deploy.model_copy(update={"packaging": "image"})}
        )
    template = synth_templates(config)[stack_name(config)]
    if variant == "iam":
        methods = resources(template, "AWS::ApiGateway::Method").values()
        assert all(m["Properties"]["AuthorizationType"] == "AWS_IAM" for m in methods)
        assert not resources(template, "AWS::ApiGateway::UsagePlan")
    else:
        functions = [
            f
            for f in resources(template, "AWS::Lambda::Function").values()
            if f["Properties"].get("PackageType") == "Image"
        ]
        assert len(functions) == 5  # score, batch, fanout, retrain, monitor
        assert all(
            f["Properties"]["ImageConfig"]["Command"][0].startswith("functions.") for f in functions
        )
        assert not resources(template, "AWS::Lambda::LayerVersion")
        assert all("SnapStart" not in f["Properties"] for f in functions)  # zip packages only


def test_layer_pins_match_the_training_environment():
    """Bundles refuse a model pickled by another scikit-learn: the layer must match."""
    from importlib.metadata import version

    pins = dict(
        line.split("==")
        for line in (ROOT / "layers" / "requirements.txt").read_text().splitlines()
        if "==" in line
    )
    for package in ("scikit-learn", "numpy", "scipy", "pandas", "joblib"):
        assert pins[package] == version(package), package


def test_layer_over_the_limit_fails_with_a_clear_message(tmp_path, monkeypatch):
    from layers import build

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("example==1.0\n")
    monkeypatch.setattr(build, "CACHE", tmp_path / "cache")
    target = build.CACHE / build.cache_key(requirements.read_text(), "3.12", "x86_64")
    (target / "python").mkdir(parents=True)
    (target / "python" / "big.bin").write_bytes(b"\0" * 1024)
    (target / ".complete").write_text("")
    with pytest.raises(build.LayerTooLargeError, match="250 MB unzipped limit"):
        build.build_layer(requirements=requirements, code_bytes=250 * 1024 * 1024)
    assert build.build_layer(requirements=requirements).cached


def test_every_log_group_keeps_logs_as_long_as_configured(churn_config):
    """The functions', the API's access and execution logs and CDK's bucket-notification
    handler's alike (before, the execution and handler logs never expired)."""
    from infrastructure.app import stack_name, synth_templates
    from skylift.topology import describe

    deploy = churn_config.deploy.model_copy(update={"log_retention_days": 7})
    config = churn_config.model_copy(update={"deploy": deploy})
    template = synth_templates(config)[stack_name(config)]
    groups = resources(template, "AWS::Logs::LogGroup").values()
    # each function's, API access and execution logs, the notification handler's, the fan-out
    # state machine's
    assert len(groups) == len(describe(config).functions) + 4
    assert {g["Properties"].get("RetentionInDays") for g in groups} == {7}


def _granted_actions(template_json) -> dict[str, set[str]]:
    """Role logical id -> every IAM action its policies allow."""
    granted: dict[str, set[str]] = {}
    for policy in resources(template_json, "AWS::IAM::Policy").values():
        actions = {
            action
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            for action in (
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            )
        }
        for role in policy["Properties"]["Roles"]:
            granted.setdefault(role["Ref"], set()).update(actions)
    return granted


def test_grants_drift_target_and_lifecycle_follow_the_topology(churn_config, monkeypatch):
    """Who may put to the capture stream and the event bus, and what a drift event starts, are
    the topology's call: a function it marks gets the grant, one it does not mark gets none.
    The lifecycle rules go by the named prefixes, whatever order the batch writes are listed in."""
    from dataclasses import replace

    import infrastructure.stack as stack_module
    from infrastructure.app import stack_name, synth_templates
    from skylift.topology import describe

    def swapped(config):
        topology = describe(config)
        functions = dict(topology.functions)
        batch = functions["batch"]
        functions["batch"] = replace(
            batch, events_put=True, firehose_put=True, s3_write=batch.s3_write[::-1]
        )
        functions["score"] = replace(functions["score"], firehose_put=False)
        return replace(topology, functions=functions, drift_function="monitor")

    monkeypatch.setattr(stack_module, "describe", swapped)
    template = synth_templates(churn_config)[stack_name(churn_config)]
    granted = _granted_actions(template)
    puts_events = {r for r, a in granted.items() if "events:PutEvents" in a}
    puts_records = {r for r, a in granted.items() if "firehose:PutRecordBatch" in a}
    assert {r.split("ServiceRole")[0] for r in puts_events} == {
        "FunctionsBatch",
        "FunctionsMonitor",
    }
    assert {r.split("ServiceRole")[0] for r in puts_records} == {"FunctionsBatch"}
    data = next(
        b
        for b in resources(template, "AWS::S3::Bucket").values()
        if "LoggingConfiguration" in b["Properties"]
    )
    lifecycle = {r.get("Prefix"): r for r in data["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert "Transitions" in lifecycle[churn_config.storage.predictions_prefix]
    assert lifecycle[churn_config.storage.quarantine_prefix]["ExpirationInDays"] == 90
    rules = resources(template, "AWS::Events::Rule").values()
    drift = next(r for r in rules if "EventPattern" in r["Properties"])
    assert [_ref_id(t["Arn"]) for t in drift["Properties"]["Targets"]] == [
        next(
            k
            for k in resources(template, "AWS::Lambda::Function")
            if k.startswith("FunctionsMonitor")
        )
    ]


def _ref_id(value) -> str:
    """The logical id an Fn::GetAtt / Ref names."""
    if "Ref" in value:
        return str(value["Ref"])
    return str(value["Fn::GetAtt"][0])


def test_every_route_also_takes_any_method_so_the_function_answers_405(template_json):
    """Without ANY beside POST /predict, API Gateway answers a GET with 403 "Missing
    Authentication Token" and the README's 405 never happens."""
    from skylift.topology import API_ROUTES

    methods = resources(template_json, "AWS::ApiGateway::Method").values()
    any_methods = [m for m in methods if m["Properties"]["HttpMethod"] == "ANY"]
    assert len(any_methods) == len({r.path for r in API_ROUTES}) + 1  # + {proxy+}
    assert all(m["Properties"]["ApiKeyRequired"] for m in any_methods)
