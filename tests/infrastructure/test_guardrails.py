"""Guardrails AWS recommends, read from the synthesized template (issue 13, items 7-10).

S3 answers a GET of a missing key with 403 unless the caller may list the key (moto: 404), so
each function must list exactly what it reads; cdk-nag findings are acknowledged on the
resource and the exact value they are about, so a new broad grant fails the synth.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pytest

from skylift.topology import describe

# ---- reading IAM policies ----------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _object_prefix(resource: Any) -> str | None:
    """``models/churn/`` for an object ARN ``<bucket ARN>/models/churn/*`` (None otherwise)."""
    if isinstance(resource, dict) and "Fn::Join" in resource:
        tail = resource["Fn::Join"][1][-1]
        if isinstance(tail, str) and tail.startswith("/") and tail.endswith("*"):
            return tail[1:-1]
    return None


def function_roles(template: dict[str, Any], topology: Any) -> dict[str, str]:
    """skylift function name (score, batch, fanout, ...) -> the logical id of its role."""
    names = {spec.handler: name for name, spec in topology.functions.items()}
    found = {}
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        handler = properties.get("Handler", "")
        if resource["Type"] == "AWS::Lambda::Function" and handler in names:
            found[names[handler]] = properties["Role"]["Fn::GetAtt"][0]
    return found


def role_statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """Every Allow statement of every policy attached to ``role``."""
    return [
        statement
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy"
        and {"Ref": role} in resource["Properties"]["Roles"]
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
        if statement.get("Effect", "Allow") == "Allow"
    ]


def s3_access(statements: list[dict[str, Any]]) -> dict[str, set[str]]:
    """{"read": object prefixes it may GetObject, "write": ... PutObject, "list": the
    ``s3:prefix`` patterns it may ListBucket with (``*`` when unconditioned)}."""
    access: dict[str, set[str]] = {"read": set(), "write": set(), "list": set()}
    for statement in statements:
        actions = _as_list(statement["Action"])
        prefixes = {_object_prefix(r) for r in _as_list(statement["Resource"])} - {None}
        if "s3:GetObject" in actions:
            access["read"] |= {p for p in prefixes if p is not None}
        if "s3:PutObject" in actions:
            access["write"] |= {p for p in prefixes if p is not None}
        if "s3:ListBucket" in actions:
            condition = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
            access["list"] |= set(_as_list(condition)) if condition else {"*"}
    return access


def unlistable_reads(access: dict[str, set[str]]) -> list[str]:
    """Read prefixes whose keys the ListBucket conditions do not cover: a GET of a missing
    key there is 403 AccessDenied on AWS, not 404. S3 evaluates the condition with the
    requested key as ``s3:prefix``, so a key stands for its prefix."""
    return sorted(
        prefix
        for prefix in access["read"]
        if not any(fnmatchcase(f"{prefix}any-key", pattern) for pattern in access["list"])
    )


# ---- the checker's own check (always runs) ----------------------------------------------------


def test_unlistable_reads_names_a_prefix_read_but_not_listable():
    access = {"read": {"models/churn/", "incoming/"}, "write": set(), "list": {"models/*"}}
    assert unlistable_reads(access) == ["incoming/"]
    assert unlistable_reads({**access, "list": {"*"}}) == []


# ---- 7. ListBucket on exactly what each function reads ----------------------------------------


def test_every_function_can_list_exactly_the_prefixes_it_reads(template_json, churn_config):
    """On AWS a function that reads a key it cannot list gets 403 for a missing key (the
    batch function's "is there a manifest yet?", the score function's alias lookup)."""
    topology = describe(churn_config)
    roles = function_roles(template_json, topology)
    assert set(roles) == set(topology.functions)
    for name, spec in topology.functions.items():
        access = s3_access(role_statements(template_json, roles[name]))
        assert access["read"] == set(spec.s3_read), name
        assert unlistable_reads(access) == [], f"{name} reads what it cannot list"
        # exactly: no listing beyond what it reads
        assert access["list"] == {f"{p}*" for p in spec.s3_read}, name


@pytest.mark.parametrize("name", ["score", "batch", "fanout", "retrain", "monitor"])
def test_topology_lists_what_each_function_reads(churn_config, name):
    spec = describe(churn_config).functions[name]
    assert spec.s3_read and spec.s3_list == spec.s3_read


# ---- 8. acknowledgments on the resource and the exact value -----------------------------------


def _score_role_with(churn_config, action: str, resource: str):
    from pathlib import Path

    from aws_cdk import aws_iam as iam

    from infrastructure.app import build_app

    app, stack = build_app(churn_config, layer_dir=Path(__file__).parent, outdir=None)
    bucket = stack.storage.bucket
    arn = "*" if resource == "*" else bucket.arn_for_objects(resource)
    stack.functions.functions["score"].add_to_role_policy(
        iam.PolicyStatement(actions=[action], resources=[arn])
    )
    return app, stack


@pytest.mark.parametrize(
    ("action", "resource", "finding"),
    [
        # X-Ray's "*" is acknowledged, but on its own policy, not on the score role
        ("s3:GetObject", "*", r"AwsSolutions-IAM5\[Resource::\*\]"),
        ("s3:PutObject", "models/*", r"AwsSolutions-IAM5\[Resource::<\w+\.Arn>/models/\*\]"),
        # the score function reads models/churn/ (acknowledged on its read policy); a write
        # there, the same ARN, must still fail
        (
            "s3:PutObject",
            "models/churn/*",
            r"AwsSolutions-IAM5\[Resource::<\w+\.Arn>/models/churn/\*\]",
        ),
    ],
)
def test_a_new_broad_grant_on_the_score_role_fails_the_synth(
    churn_config, action, resource, finding
):
    app, _ = _score_role_with(churn_config, action, resource)
    with pytest.raises(Exception, match=finding):
        app.synth()


def test_no_acknowledgment_is_stack_or_app_wide(churn_config):
    """Every acknowledgment sits on the resource it is about (or the construct holding only
    such resources, like the API's root for its methods), never on the stack or the app."""
    from pathlib import Path

    import aws_cdk as cdk

    from infrastructure.app import build_app

    app, stack = build_app(churn_config, layer_dir=Path(__file__).parent, outdir=None)
    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    for scope in (app, stack):
        assert [m.data for m in scope.node.metadata if m.type == key] == []
    acknowledged = [
        (c.node.path, rule)
        for c in stack.node.find_all()
        for m in c.node.metadata
        if m.type == key
        for rule in m.data
    ]
    # the object wildcards: each on one function's read or write policy, with its prefix
    score_reads = {r for p, r in acknowledged if p.endswith("/Functions/ScoreReads")}
    assert len(score_reads) == 1 and next(iter(score_reads)).endswith("/models/churn/*]")
    assert not [r for p, r in acknowledged if "/Functions/Score/" in p and "IAM5" in r]


# ---- 9. the Serverless pack: failures of the asynchronous paths land somewhere -----------------


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_every_eventbridge_target_has_a_dlq_and_a_retry_policy(template_json):
    rules = _resources(template_json, "AWS::Events::Rule")
    assert len(rules) == 4  # retrain and monitor schedules, drift -> retrain, alarm -> abort
    queues = set()
    for rule in rules.values():
        for target in rule["Properties"]["Targets"]:
            queues.add(target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0])
            policy = target["RetryPolicy"]
            assert policy["MaximumRetryAttempts"] >= 1 and policy["MaximumEventAgeInSeconds"] > 0
    (queue,) = queues
    assert template_json["Resources"][queue]["Type"] == "AWS::SQS::Queue"


def test_scheduled_functions_send_async_failures_to_a_destination(template_json):
    functions = {
        handler.split(".")[1]: k
        for k, f in _resources(template_json, "AWS::Lambda::Function").items()
        if (handler := f["Properties"].get("Handler", "")).startswith("functions.")
    }
    configs = {
        c["Properties"]["FunctionName"]["Ref"]: c["Properties"]
        for c in _resources(template_json, "AWS::Lambda::EventInvokeConfig").values()
    }
    assert set(configs) == {functions["retrain"], functions["monitor"]}
    for config in configs.values():
        destination = config["DestinationConfig"]["OnFailure"]["Destination"]
        assert destination["Fn::GetAtt"][0].startswith("SchedulingInvocationFailures")


def test_the_serverless_pack_fails_the_synth_on_a_target_without_a_dlq(churn_config):
    """The zero-findings synth is the Serverless pack's too: a new schedule whose target has
    no dead-letter queue breaks it."""
    from pathlib import Path

    from aws_cdk import aws_events as events
    from aws_cdk import aws_events_targets as targets

    from infrastructure.app import build_app

    app, stack = build_app(churn_config, layer_dir=Path(__file__).parent, outdir=None)
    events.Rule(
        stack,
        "Unguarded",
        schedule=events.Schedule.expression("rate(1 day)"),
        targets=[targets.LambdaFunction(stack.functions.functions["monitor"])],
    )
    with pytest.raises(Exception, match=r"Serverless-EventBusDLQ"):
        app.synth()


# ---- 10. alarms, concurrency, log retention -----------------------------------------------------


def _function_ids(template: dict[str, Any]) -> dict[str, str]:
    return {
        handler.split(".")[1]: k
        for k, f in _resources(template, "AWS::Lambda::Function").items()
        if (handler := f["Properties"].get("Handler", "")).startswith("functions.")
    }


def test_monitor_and_retrain_errors_raise_alarms(template_json):
    functions = _function_ids(template_json)
    watched = {
        dimension["Value"]["Ref"]
        for alarm in _resources(template_json, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == "Errors"
        for dimension in alarm["Properties"]["Dimensions"]
        if dimension["Name"] == "FunctionName"
    }
    assert watched == {functions["monitor"], functions["retrain"]}


def test_batch_cannot_starve_the_api(template_json, churn_config):
    """The score function has concurrency of its own; the batch event source has a cap."""
    functions = _resources(template_json, "AWS::Lambda::Function")
    score = functions[_function_ids(template_json)["score"]]["Properties"]
    assert score["ReservedConcurrentExecutions"] == churn_config.api.reserved_concurrency
    (mapping,) = _resources(template_json, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["ScalingConfig"] == {
        "MaximumConcurrency": churn_config.batch.max_concurrency
    }


def test_provisioned_concurrency_cannot_exceed_the_reservation(churn_config):
    from pydantic import ValidationError

    from skylift.config_sections import ApiConfig

    with pytest.raises(ValidationError, match=r"provisioned_concurrency \(30\) must not exceed"):
        ApiConfig(reserved_concurrency=20, provisioned_concurrency=30)
    assert ApiConfig(reserved_concurrency=20, provisioned_concurrency=20)


def test_api_execution_logs_and_the_notification_handler_logs_expire(template_json, churn_config):
    groups = _resources(template_json, "AWS::Logs::LogGroup")
    days = churn_config.deploy.log_retention_days
    (api,) = _resources(template_json, "AWS::ApiGateway::RestApi")
    execution = [
        g
        for g in groups.values()
        if g["Properties"].get("LogGroupName")
        == {"Fn::Join": ["", ["API-Gateway-Execution-Logs_", {"Ref": api}, "/prod"]]}
    ]
    assert len(execution) == 1 and execution[0]["Properties"]["RetentionInDays"] == days
    (handler,) = [
        f
        for k, f in _resources(template_json, "AWS::Lambda::Function").items()
        if k.startswith("BucketNotificationsHandler")
    ]
    group = handler["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    assert groups[group]["Properties"]["RetentionInDays"] == days
    assert group in handler["DependsOn"]
