"""The Lambda functions (and their layers), each with only the S3 prefixes it uses."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infrastructure.components.retention import log_retention
from infrastructure.nag import acknowledge, acknowledge_object_wildcards
from skylift.config import SkyliftConfig
from skylift.topology import FunctionSpec, Topology

# What each layer of skylift.topology.LAYERS holds (the layer's description in the console).
LAYER_DESCRIPTIONS = {
    "sklearn": "skylift runtime: scikit-learn, pandas, numpy, scipy, powertools",
    "onnx": "skylift onnx runtime: onnxruntime, numpy, pandas, powertools (no scikit-learn)",
    "exports": "skylift runtime with the ONNX exporter: scikit-learn, skl2onnx, onnxruntime",
}
# Construct ids: the sklearn layer keeps the id it always had (no replacement on update).
LAYER_IDS = {"sklearn": "Runtime", "onnx": "RuntimeOnnx", "exports": "RuntimeExports"}

RUNTIMES = {
    "3.11": lambda_.Runtime.PYTHON_3_11,
    "3.12": lambda_.Runtime.PYTHON_3_12,
    "3.13": lambda_.Runtime.PYTHON_3_13,
}


class Functions(Construct):
    """One Lambda function per FunctionSpec, each with only the S3 prefixes it needs."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: SkyliftConfig,
        topology: Topology,
        bucket: s3.IBucket,
        code_dir: Path,
        layer_dirs: Mapping[str, Path],
    ) -> None:
        super().__init__(scope, id)
        self.functions: dict[str, lambda_.Function] = {}
        deploy = config.deploy
        architecture = (
            lambda_.Architecture.ARM_64
            if deploy.architecture == "arm64"
            else lambda_.Architecture.X86_64
        )
        # One layer per kind the functions run on ([deploy].runtime picks them in topology).
        self.layers: dict[str, lambda_.LayerVersion] = {}
        if deploy.packaging == "layer":
            for kind in topology.layers:
                self.layers[kind] = lambda_.LayerVersion(
                    self,
                    LAYER_IDS[kind],
                    code=lambda_.Code.from_asset(str(layer_dirs[kind])),
                    compatible_runtimes=[RUNTIMES[deploy.python_version]],
                    compatible_architectures=[architecture],
                    description=LAYER_DESCRIPTIONS[kind],
                )
        # X-Ray's PutTraceSegments/PutTelemetryRecords accept no resource ARN: their "*" sits in
        # a policy of its own, acknowledged there, so a "*" added to a function's own policy
        # still fails the synth (Tracing.ACTIVE would put it in every role's DefaultPolicy).
        self.tracing = iam.Policy(
            self,
            "Tracing",
            statements=[
                iam.PolicyStatement(
                    actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                    resources=["*"],
                )
            ],
        )
        acknowledge(
            self.tracing,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords accept no resource ARN.",
        )
        for name, spec in topology.functions.items():
            environment = {**spec.environment, "SKYLIFT_STORAGE__BUCKET": bucket.bucket_name}
            log_group = logs.LogGroup(
                self,
                f"{name.title()}Logs",
                retention=log_retention(deploy.log_retention_days),
                removal_policy=cdk.RemovalPolicy.DESTROY,
            )
            common: dict[str, Any] = {
                "description": spec.description,
                "memory_size": spec.memory_mb,
                "timeout": cdk.Duration.seconds(spec.timeout_seconds),
                "architecture": architecture,
                "environment": environment,
                "log_group": log_group,
                "reserved_concurrent_executions": spec.reserved_concurrency,
            }
            if deploy.packaging == "image":
                function: lambda_.Function = lambda_.DockerImageFunction(
                    self,
                    name.title(),
                    code=lambda_.DockerImageCode.from_image_asset(
                        str(code_dir), cmd=[spec.handler]
                    ),
                    **common,
                )
            else:
                function = lambda_.Function(
                    self,
                    name.title(),
                    runtime=RUNTIMES[deploy.python_version],
                    handler=spec.handler,
                    code=lambda_.Code.from_asset(str(code_dir)),
                    layers=[self.layers[spec.layer]],
                    snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS
                    if spec.snap_start
                    else None,
                    **common,
                )
            if spec.snap_start:
                # The Serving construct publishes function.current_version and invokes it
                # through the "live" alias; CDK warns before it can see that.
                cdk.Annotations.of(function).acknowledge_warning(
                    "@aws-cdk/aws-lambda:snapStartRequirePublish",
                    "each deploy publishes a version, invoked through the live alias",
                )
            cfn_function = function.node.default_child
            assert isinstance(cfn_function, lambda_.CfnFunction)
            cfn_function.tracing_config = lambda_.CfnFunction.TracingConfigProperty(mode="Active")
            assert function.role is not None
            self.tracing.attach_to_role(function.role)
            cfn_function.node.add_dependency(self.tracing)  # Lambda checks X-Ray rights on create
            acknowledge(
                function.role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "Grants only log writes to the function's own log group.",
            )
            for rule in ("AwsSolutions-L1", "Serverless-LambdaLatestVersion"):
                acknowledge(
                    function,
                    rule,
                    "The runtime comes from [deploy].python_version, pinned to match the "
                    "layer's wheels and bytecode.",
                )
            for policy in _grant_prefixes(self, name, function, bucket, spec):
                cfn_function.node.add_dependency(policy)
            self.functions[name] = function


def _grant_prefixes(
    scope: Construct, name: str, function: lambda_.Function, bucket: s3.IBucket, spec: FunctionSpec
) -> list[iam.Policy]:
    """Least privilege: object reads (with ListBucket on exactly those prefixes, so a missing
    key is 404, not 403) and object writes on the prefixes the function uses. Each in a policy
    of its own whose object wildcards are acknowledged on it alone: a write added on a prefix
    the function only reads, or any new wildcard in its role, fails the synth."""
    assert function.role is not None
    role = function.role

    def grant(
        kind: str,
        prefixes: tuple[str, ...],
        actions: list[str],
        does: str,
        *extra: iam.PolicyStatement,
    ) -> iam.Policy:
        objects = [bucket.arn_for_objects(f"{p}*") for p in prefixes]
        statement = iam.PolicyStatement(actions=actions, resources=objects)
        policy = iam.Policy(
            scope, f"{name.title()}{kind}", roles=[role], statements=[statement, *extra]
        )
        acknowledge_object_wildcards(
            policy, bucket, prefixes, "The {prefix} objects the " + name + f" function {does}."
        )
        return policy

    policies = []
    if spec.s3_read:
        listing = iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in spec.s3_list]}},
        )
        policies.append(grant("Reads", spec.s3_read, ["s3:GetObject"], "reads", listing))
    if spec.s3_write:
        writing = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
        policies.append(grant("Writes", spec.s3_write, writing, "writes"))
    if spec.s3_delete:
        policies.append(grant("Deletes", spec.s3_delete, ["s3:DeleteObject"], "cleans up"))
    return policies
