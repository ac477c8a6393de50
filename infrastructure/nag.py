"""cdk-nag on every synth: the rule packs, and acknowledgments on the resource they are about.

An acknowledgment names one rule (with its exact finding, e.g. the object ARN an IAM5 wildcard
is on) and is recorded on the construct it concerns; cdk-nag honours it there and below, never
elsewhere. So a new broad grant on any other resource, or another wildcard on the same one,
fails the synth.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks, ServerlessChecks
from constructs import IConstruct

__all__ = ["acknowledge", "acknowledge_object_wildcards", "add_rule_packs"]


def add_rule_packs(app: cdk.App) -> None:
    """AwsSolutions and Serverless, run as CDK validation plugins: any finding not
    acknowledged fails the synth."""
    cdk.Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True),
        ServerlessChecks(app, write_suppressions_to_cloud_formation=True),
    )


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Accept ``rule`` (``"AwsSolutions-IAM5[Resource::...]"``, ``"Serverless-LambdaDLQ"``) on
    ``scope`` and the constructs under it, for ``reason``."""
    pack = rule.split("-", 1)[0]
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=f"{pack}::{rule}", reason=reason))


def acknowledge_object_wildcards(
    scope: IConstruct, bucket: s3.IBucket, prefixes: tuple[str, ...] | list[str], reason: str
) -> None:
    """Accept ``<bucket ARN>/<prefix>*`` on ``scope``, prefix by prefix (the IAM5 finding
    names the bucket by its logical id)."""
    stack = cdk.Stack.of(scope)
    cfn_bucket = bucket.node.default_child
    assert isinstance(cfn_bucket, cdk.CfnElement)
    logical_id = stack.resolve(stack.get_logical_id(cfn_bucket))
    for prefix in prefixes:
        acknowledge(
            scope,
            f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{prefix}*]",
            reason.format(prefix=prefix),
        )
