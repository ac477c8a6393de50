"""Parity: the local stack serves and holds what the CDK stacks declare.

Both sides come from :func:`skylift.topology.describe`, but each translates it on its own; this
test reads the local wiring back from moto (and the gateway) and compares it with the
synthesized CloudFormation: API methods and resource paths, the S3 -> SQS notification
(prefix filter and events), the batch queue's VisibilityTimeout and maxReceiveCount, the
schedule expressions, each function's handler and environment variable names, and what each
function may put to (the capture stream, the event bus). moto enforces no IAM, so the local side
of that last check is what the local stack records as granted (see
:func:`skylift.local.provision.granted_puts`), compared with the template's IAM policies.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

# ---- reading CloudFormation -------------------------------------------------------------------


def _resources(templates: dict[str, dict[str, Any]], kind: str) -> list[tuple[str, dict]]:
    return [
        (logical_id, resource)
        for template in templates.values()
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == kind
    ]


def _ref(value: Any) -> str | None:
    """The logical id a Ref / Fn::GetAtt points at (None for anything else)."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return str(target[0] if isinstance(target, list) else target.split(".")[0])
    return None


def cfn_routes(templates: dict[str, dict[str, Any]]) -> set[tuple[str, str]]:
    """(HttpMethod, resource path) of every API Gateway method, CORS preflight left out."""
    resources = {
        logical_id: resource["Properties"]
        for template in templates.values()
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::ApiGateway::Resource"
    }

    def path_of(resource_id: Any) -> str:
        parts: list[str] = []
        current = _ref(resource_id)
        while current in resources:
            properties = resources[current]
            parts.insert(0, properties["PathPart"])
            current = _ref(properties["ParentId"])
        return "/" + "/".join(parts)

    return {
        (props["HttpMethod"], path_of(props["ResourceId"]))
        for _, method in _resources(templates, "AWS::ApiGateway::Method")
        if (props := method["Properties"])["HttpMethod"] != "OPTIONS"
    }


def cfn_notifications(templates: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for _, resource in _resources(templates, "Custom::S3BucketNotifications"):
        configuration = resource["Properties"].get("NotificationConfiguration", {})
        for item in configuration.get("QueueConfigurations", []):
            rules = item.get("Filter", {}).get("Key", {}).get("FilterRules", [])
            found.append(
                {
                    "events": sorted(item["Events"]),
                    "prefix": next(
                        (r["Value"] for r in rules if r["Name"].lower() == "prefix"), ""
                    ),
                }
            )
    return found


def cfn_batch_queue(templates: dict[str, dict[str, Any]]) -> dict[str, int]:
    with_redrive = [
        r["Properties"]
        for _, r in _resources(templates, "AWS::SQS::Queue")
        if "RedrivePolicy" in r.get("Properties", {})
    ]
    assert len(with_redrive) == 1, f"expected one queue with a DLQ, found {len(with_redrive)}"
    (queue,) = with_redrive
    return {
        "visibility_timeout": int(queue.get("VisibilityTimeout", 30)),
        "max_receive_count": int(queue["RedrivePolicy"]["maxReceiveCount"]),
    }


def cfn_schedules(templates: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(
        r["Properties"]["ScheduleExpression"]
        for _, r in _resources(templates, "AWS::Events::Rule")
        if "ScheduleExpression" in r.get("Properties", {})
    )


def cfn_functions(templates: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Handler -> environment variable names, for skylift's own functions (CDK's helper
    functions, e.g. the bucket-notification handler, are not ours)."""
    found = {}
    for _, resource in _resources(templates, "AWS::Lambda::Function"):
        properties = resource["Properties"]
        handler = properties.get("Handler", "")
        if handler.startswith("functions."):
            variables = properties.get("Environment", {}).get("Variables", {})
            found[handler] = sorted(k for k in variables if not k.startswith("AWS_"))
    return found


def _role_of_function(properties: dict[str, Any]) -> str | None:
    return _ref(properties.get("Role"))


def _stream_names(templates: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Logical id -> DeliveryStreamName of every Firehose delivery stream."""
    return {
        logical_id: r["Properties"]["DeliveryStreamName"]
        for logical_id, r in _resources(templates, "AWS::KinesisFirehose::DeliveryStream")
    }


def _bus_name(resource: Any) -> str:
    """The event bus an ``events:PutEvents`` statement names (its ARN's last part)."""
    if isinstance(resource, dict) and "Fn::Join" in resource:
        resource = "".join(p for p in resource["Fn::Join"][1] if isinstance(p, str))
    return str(resource).rpartition("event-bus/")[2]


def cfn_puts(templates: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Handler -> what its role may put to: "firehose:<stream name>", "events:<bus>"."""
    streams = _stream_names(templates)
    by_role: dict[str, set[str]] = {}
    for _, policy in _resources(templates, "AWS::IAM::Policy"):
        properties = policy["Properties"]
        for statement in properties["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = actions if isinstance(actions, list) else [actions]
            resources = statement["Resource"]
            resources = resources if isinstance(resources, list) else [resources]
            puts: set[str] = set()
            if "firehose:PutRecordBatch" in actions:
                puts |= {f"firehose:{streams.get(_ref(r) or '', r)}" for r in resources}
            if "events:PutEvents" in actions:
                puts |= {f"events:{_bus_name(r)}" for r in resources}
            for role in properties["Roles"]:
                by_role.setdefault(_ref(role) or "", set()).update(puts)
    return {
        properties["Handler"]: sorted(by_role.get(_role_of_function(properties) or "", ()))
        for _, resource in _resources(templates, "AWS::Lambda::Function")
        if (properties := resource["Properties"]).get("Handler", "").startswith("functions.")
    }


# ---- the comparison ---------------------------------------------------------------------------


def compare(local: dict[str, Any], templates: dict[str, dict[str, Any]]) -> list[str]:
    """Every difference between the local wiring and the templates, as readable lines."""
    problems = []
    local_routes = set(map(tuple, local["routes"]))
    if local_routes != cfn_routes(templates):
        problems.append(
            f"API routes: local only {sorted(local_routes - cfn_routes(templates))}, "
            f"CloudFormation only {sorted(cfn_routes(templates) - local_routes)}"
        )
    if sorted(local["notifications"], key=str) != sorted(cfn_notifications(templates), key=str):
        problems.append(
            f"S3 notifications: local {local['notifications']}, "
            f"CloudFormation {cfn_notifications(templates)}"
        )
    if local["queue"] != cfn_batch_queue(templates):
        problems.append(
            f"batch queue: local {local['queue']}, CloudFormation {cfn_batch_queue(templates)}"
        )
    if local["schedules"] != cfn_schedules(templates):
        problems.append(
            f"schedules: local {local['schedules']}, CloudFormation {cfn_schedules(templates)}"
        )
    local_functions = {f["handler"]: f["environment"] for f in local["functions"].values()}
    if local_functions != cfn_functions(templates):
        problems.append(
            f"functions (handler -> env names): local {local_functions}, "
            f"CloudFormation {cfn_functions(templates)}"
        )
    local_puts = {f["handler"]: f["puts"] for f in local["functions"].values()}
    if local_puts != cfn_puts(templates):
        problems.append(
            f"grants (handler -> puts): local {local_puts}, CloudFormation {cfn_puts(templates)}"
        )
    return problems


# ---- the comparison's own check (always runs) -------------------------------------------------


def _template(**resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"Stack": {"Resources": resources}}


SAMPLE = _template(
    Api={"Type": "AWS::ApiGateway::RestApi", "Properties": {}},
    Predict={
        "Type": "AWS::ApiGateway::Resource",
        "Properties": {
            "PathPart": "predict",
            "ParentId": {"Fn::GetAtt": ["Api", "RootResourceId"]},
        },
    },
    PredictPost={
        "Type": "AWS::ApiGateway::Method",
        "Properties": {"HttpMethod": "POST", "ResourceId": {"Ref": "Predict"}},
    },
    PredictOptions={
        "Type": "AWS::ApiGateway::Method",
        "Properties": {"HttpMethod": "OPTIONS", "ResourceId": {"Ref": "Predict"}},
    },
    Notify={
        "Type": "Custom::S3BucketNotifications",
        "Properties": {
            "NotificationConfiguration": {
                "QueueConfigurations": [
                    {
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {
                            "Key": {"FilterRules": [{"Name": "prefix", "Value": "incoming/"}]}
                        },
                        "QueueArn": {"Fn::GetAtt": ["Queue", "Arn"]},
                    }
                ]
            }
        },
    },
    Queue={
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "VisibilityTimeout": 5400,
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]},
                "maxReceiveCount": 3,
            },
        },
    },
    Dlq={"Type": "AWS::SQS::Queue", "Properties": {}},
    Rule={"Type": "AWS::Events::Rule", "Properties": {"ScheduleExpression": "rate(1 day)"}},
    Fn={
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Handler": "functions.score.app.handler",
            "Environment": {"Variables": {"SKYLIFT_CONFIG": "skylift.toml", "AWS_X": "1"}},
            "Role": {"Fn::GetAtt": ["FnRole", "Arn"]},
        },
    },
    FnRole={"Type": "AWS::IAM::Role", "Properties": {}},
    FnPolicy={
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "Roles": [{"Ref": "FnRole"}],
            "PolicyDocument": {
                "Statement": [
                    {
                        "Action": ["firehose:PutRecordBatch", "firehose:PutRecord"],
                        "Resource": {"Fn::GetAtt": ["Stream", "Arn"]},
                    },
                    {"Action": "s3:GetObject", "Resource": "*"},
                ]
            },
        },
    },
    Stream={
        "Type": "AWS::KinesisFirehose::DeliveryStream",
        "Properties": {"DeliveryStreamName": "capture"},
    },
    Helper={"Type": "AWS::Lambda::Function", "Properties": {"Handler": "index.handler"}},
)

SAMPLE_LOCAL = {
    "routes": [("POST", "/predict")],
    "notifications": [{"events": ["s3:ObjectCreated:*"], "prefix": "incoming/"}],
    "queue": {"visibility_timeout": 5400, "max_receive_count": 3},
    "schedules": ["rate(1 day)"],
    "functions": {
        "score": {
            "handler": "functions.score.app.handler",
            "environment": ["SKYLIFT_CONFIG"],
            "puts": ["firehose:capture"],
        }
    },
}


def test_comparison_finds_no_difference_between_matching_sides():
    assert compare(SAMPLE_LOCAL, SAMPLE) == []


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("routes", [("GET", "/predict")], "API routes"),
        (
            "notifications",
            [{"events": ["s3:ObjectCreated:*"], "prefix": "in/"}],
            "S3 notifications",
        ),
        ("queue", {"visibility_timeout": 30, "max_receive_count": 3}, "batch queue"),
        ("schedules", ["rate(1 hour)"], "schedules"),
        (
            "functions",
            {
                "score": {
                    "handler": "functions.score.app.handler",
                    "environment": [],
                    "puts": ["firehose:capture"],
                }
            },
            "functions",
        ),
        (
            "functions",
            {
                "score": {
                    "handler": "functions.score.app.handler",
                    "environment": ["SKYLIFT_CONFIG"],
                    "puts": ["events:default", "firehose:capture"],
                }
            },
            "grants",
        ),
    ],
)
def test_comparison_names_each_kind_of_difference(field, value, named):
    problems = compare({**SAMPLE_LOCAL, field: value}, SAMPLE)
    assert len(problems) == 1 and problems[0].startswith(named)


# ---- the real parity check --------------------------------------------------------------------


def _synth_templates() -> Any:
    try:
        module = importlib.import_module("infrastructure.app")
    except ImportError as exc:
        pytest.skip(f"infrastructure.app cannot be imported yet ({exc}); CDK stacks not written")
    synth = getattr(module, "synth_templates", None)
    if synth is None:
        pytest.skip("infrastructure.app.synth_templates(config) does not exist yet")
    return synth


@pytest.fixture(scope="module")
def templates(churn_config):
    return _synth_templates()(churn_config)


@pytest.fixture(scope="module")
def local_wiring(churn_config):
    from skylift.local.stack import LocalStack

    with LocalStack(churn_config, poll=False, clocks=False) as stack:
        return stack.wiring()


def test_local_stack_matches_the_synthesized_templates(templates, local_wiring):
    problems = compare(local_wiring, templates)
    assert not problems, "local stack and CDK stacks differ:\n" + "\n".join(problems)
