"""Provision the local AWS resources from the topology: plan, then apply (idempotent).

:func:`plan` compares what the topology describes with what the moto server already holds and
returns the actions still needed; :func:`apply` carries them out. Running both twice is a
no-op the second time. The local bucket deliberately gets no TLS-only bucket policy: moto
would deny every (plain HTTP) request to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from skylift.topology import Topology

__all__ = [
    "Action",
    "Clients",
    "ProvisionedNames",
    "apply",
    "granted_puts",
    "names_for",
    "plan",
    "provision",
]

LOCAL_ACCOUNT = "123456789012"


@dataclass(frozen=True)
class Clients:
    s3: Any
    sqs: Any
    firehose: Any
    events: Any
    region: str = "us-east-1"
    kms: Any = None  # the signing key's home; None: leave signing keys alone


@dataclass(frozen=True)
class ProvisionedNames:
    bucket: str
    queue: str
    dlq: str
    stream: str
    rules: dict[str, str]  # schedule name -> rule name
    drift_rule: str = ""  # the drift event -> retrain rule

    def queue_arn(self, region: str, name: str) -> str:
        return f"arn:aws:sqs:{region}:{LOCAL_ACCOUNT}:{name}"

    def rule_arn(self, region: str, schedule: str) -> str:
        return f"arn:aws:events:{region}:{LOCAL_ACCOUNT}:rule/{self.rules[schedule]}"

    def function_arn(self, region: str, function: str) -> str:
        return f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT}:function:{function}"


def names_for(topology: Topology) -> ProvisionedNames:
    return ProvisionedNames(
        bucket=topology.bucket,
        queue=topology.queue_name,
        dlq=topology.dlq_name,
        stream=topology.capture_stream,
        rules={s.name: f"skylift-{topology.model_name}-{s.name}" for s in topology.schedules},
        drift_rule=f"skylift-{topology.model_name}-drift",
    )


def drift_pattern(topology: Topology) -> str:
    """The drift rule's event pattern, as the CDK stack declares it."""
    return json.dumps(
        {"source": [topology.drift_event_source], "detail-type": [topology.drift_event_detail_type]}
    )


def granted_puts(topology: Topology, names: ProvisionedNames) -> dict[str, list[str]]:
    """Function name -> what it may put to ("firehose:<stream>", "events:<bus>"), as the CDK
    stacks grant it in IAM. The moto server here enforces no IAM, so locally this is the record
    the parity test compares with the template's policies, not a restriction."""
    return {
        name: sorted(
            ([f"firehose:{names.stream}"] if spec.firehose_put else [])
            + (["events:default"] if spec.events_put else [])
        )
        for name, spec in topology.functions.items()
    }


@dataclass(frozen=True)
class Action:
    kind: str  # create_bucket | create_queue | set_queue | notify | create_stream | put_rule
    # | create_signing_key
    target: str
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.kind} {self.target}"


def _queue_url(clients: Clients, name: str) -> str | None:
    try:
        return clients.sqs.get_queue_url(QueueName=name)["QueueUrl"]  # type: ignore[no-any-return,unused-ignore]
    except clients.sqs.exceptions.QueueDoesNotExist:
        return None


def _queue_attributes(topology: Topology, names: ProvisionedNames, region: str) -> dict[str, str]:
    return {
        "VisibilityTimeout": str(topology.queue_visibility_timeout_seconds),
        "RedrivePolicy": json.dumps(
            {
                "deadLetterTargetArn": names.queue_arn(region, names.dlq),
                "maxReceiveCount": topology.max_receive_count,
            }
        ),
    }


def _notification(topology: Topology, names: ProvisionedNames, region: str) -> dict[str, Any]:
    return {
        "QueueConfigurations": [
            {
                "Id": "skylift-incoming",
                "QueueArn": names.queue_arn(region, names.queue),
                "Events": list(topology.notification_events),
                "Filter": {
                    "Key": {"FilterRules": [{"Name": "prefix", "Value": topology.incoming_prefix}]}
                },
            }
        ]
    }


def plan(topology: Topology, clients: Clients) -> list[Action]:
    """The actions that make the moto server hold what ``topology`` describes."""
    names = names_for(topology)
    region = clients.region
    actions: list[Action] = []
    buckets = {b["Name"] for b in clients.s3.list_buckets().get("Buckets", [])}
    if names.bucket not in buckets:
        actions.append(Action("create_bucket", names.bucket))
    if _queue_url(clients, names.dlq) is None:
        actions.append(Action("create_queue", names.dlq, {"Attributes": {}}))
    wanted = _queue_attributes(topology, names, region)
    url = _queue_url(clients, names.queue)
    if url is None:
        actions.append(Action("create_queue", names.queue, {"Attributes": wanted}))
    else:
        current = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        have = current.get("Attributes", {})
        same_redrive = json.loads(have.get("RedrivePolicy", "{}")) == json.loads(
            wanted["RedrivePolicy"]
        )
        if have.get("VisibilityTimeout") != wanted["VisibilityTimeout"] or not same_redrive:
            actions.append(Action("set_queue", names.queue, {"Attributes": wanted}))
    notification = _notification(topology, names, region)
    have_notification: dict[str, Any] = {}
    if names.bucket in buckets:
        have_notification = clients.s3.get_bucket_notification_configuration(Bucket=names.bucket)
    if _queue_configs(have_notification) != _queue_configs(notification):
        actions.append(Action("notify", names.bucket, {"Configuration": notification}))
    streams = clients.firehose.list_delivery_streams().get("DeliveryStreamNames", [])
    if names.stream not in streams:
        actions.append(
            Action(
                "create_stream",
                names.stream,
                {
                    "ExtendedS3DestinationConfiguration": {
                        "RoleARN": f"arn:aws:iam::{LOCAL_ACCOUNT}:role/skylift-capture",
                        "BucketARN": f"arn:aws:s3:::{names.bucket}",
                        "Prefix": topology.capture_prefix,
                        "ErrorOutputPrefix": topology.capture_error_prefix,
                        "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 5},
                    }
                },
            )
        )
    if topology.provision_signing_key and clients.kms is not None:
        alias = topology.signing_key
        try:
            clients.kms.describe_key(KeyId=alias)
        except clients.kms.exceptions.NotFoundException:
            actions.append(Action("create_signing_key", str(alias)))
    for schedule in topology.schedules:
        rule = names.rules[schedule.name]
        state = "ENABLED" if schedule.enabled else "DISABLED"
        try:
            have_rule = clients.events.describe_rule(Name=rule)
        except clients.events.exceptions.ResourceNotFoundException:
            have_rule = {}
        if (
            have_rule.get("ScheduleExpression") != schedule.expression
            or have_rule.get("State") != state
        ):
            actions.append(
                Action(
                    "put_rule",
                    rule,
                    {
                        "ScheduleExpression": schedule.expression,
                        "State": state,
                        "Target": names.function_arn(region, schedule.function),
                    },
                )
            )
    drift_state = "ENABLED" if topology.retrain_on_drift else "DISABLED"
    try:
        have_drift = clients.events.describe_rule(Name=names.drift_rule)
    except clients.events.exceptions.ResourceNotFoundException:
        have_drift = {}
    pattern = drift_pattern(topology)
    if have_drift.get("State") != drift_state or json.loads(
        have_drift.get("EventPattern") or "{}"
    ) != json.loads(pattern):
        actions.append(
            Action(
                "put_rule",
                names.drift_rule,
                {
                    "EventPattern": pattern,
                    "State": drift_state,
                    "Target": names.function_arn(region, topology.drift_function),
                },
            )
        )
    return actions


def _queue_configs(configuration: dict[str, Any]) -> list[tuple[str, tuple[str, ...], str]]:
    result = []
    for item in configuration.get("QueueConfigurations", []):
        rules = item.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        prefix = next((r["Value"] for r in rules if r["Name"].lower() == "prefix"), "")
        result.append((item["QueueArn"], tuple(sorted(item["Events"])), prefix))
    return sorted(result)


def apply(actions: list[Action], clients: Clients) -> None:
    """Carry out the planned actions, in order (queues before the notification that uses them)."""
    for action in actions:
        if action.kind == "create_bucket":
            kwargs: dict[str, Any] = {"Bucket": action.target}
            if clients.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": clients.region}
            clients.s3.create_bucket(**kwargs)
        elif action.kind == "create_queue":
            clients.sqs.create_queue(
                QueueName=action.target, Attributes=action.params["Attributes"]
            )
        elif action.kind == "set_queue":
            url = clients.sqs.get_queue_url(QueueName=action.target)["QueueUrl"]
            clients.sqs.set_queue_attributes(QueueUrl=url, Attributes=action.params["Attributes"])
        elif action.kind == "notify":
            clients.s3.put_bucket_notification_configuration(
                Bucket=action.target, NotificationConfiguration=action.params["Configuration"]
            )
        elif action.kind == "create_stream":
            clients.firehose.create_delivery_stream(
                DeliveryStreamName=action.target,
                DeliveryStreamType="DirectPut",
                ExtendedS3DestinationConfiguration=action.params[
                    "ExtendedS3DestinationConfiguration"
                ],
            )
        elif action.kind == "put_rule":
            trigger = {
                k: action.params[k]
                for k in ("ScheduleExpression", "EventPattern")
                if k in action.params
            }
            clients.events.put_rule(Name=action.target, State=action.params["State"], **trigger)
            clients.events.put_targets(
                Rule=action.target, Targets=[{"Id": "function", "Arn": action.params["Target"]}]
            )
        elif action.kind == "create_signing_key":
            # As the CDK Signing construct declares it: ECC P-256, for signing, behind the alias.
            key = clients.kms.create_key(
                KeyUsage="SIGN_VERIFY",
                KeySpec="ECC_NIST_P256",
                Description=f"Signs the versions of the model behind {action.target}",
            )
            clients.kms.create_alias(
                AliasName=action.target, TargetKeyId=key["KeyMetadata"]["KeyId"]
            )
        else:  # pragma: no cover - plan() only makes the kinds above
            raise ValueError(f"unknown provisioning action {action.kind!r}")


def provision(topology: Topology, clients: Clients) -> list[Action]:
    """Plan and apply; returns what was done (empty when everything already existed)."""
    actions = plan(topology, clients)
    apply(actions, clients)
    return actions
