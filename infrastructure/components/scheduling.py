"""The retrain and monitor schedules, the capture delivery stream, the drift -> retrain rule."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infrastructure.nag import acknowledge, acknowledge_object_wildcards
from skylift.topology import Topology

# EventBridge retries delivery (throttling, an unavailable service) for up to this long; a run
# that still cannot start lands in the failures queue rather than overlapping the next one.
TARGET_RETRY_ATTEMPTS = 3
TARGET_MAX_EVENT_AGE = cdk.Duration.hours(1)
# Lambda retries a failed run once (a transient fault) before recording it; a retrain that
# fails twice will fail again, and the schedule runs it next time anyway.
ASYNC_RETRY_ATTEMPTS = 1


class Scheduling(Construct):
    """Retrain and monitor schedules, the capture delivery stream, the drift -> retrain rule."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topology: Topology,
        bucket: s3.Bucket,
        functions: dict[str, lambda_.Function],
    ) -> None:
        super().__init__(scope, id)
        # EventBridge invokes the scheduled functions asynchronously. What fails on either
        # side lands here (alarmed): an event EventBridge could not deliver after its retries,
        # and an invocation that failed after Lambda's retries (with the error).
        self.failures = sqs.Queue(
            self,
            "InvocationFailures",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        for rule in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"):
            acknowledge(
                self.failures,
                rule,
                "This queue is itself the dead-letter queue of the schedules' targets and the "
                "on-failure destination of the functions they invoke.",
            )

        def target(function: lambda_.IFunction) -> targets.LambdaFunction:
            return targets.LambdaFunction(
                function,
                dead_letter_queue=self.failures,
                retry_attempts=TARGET_RETRY_ATTEMPTS,
                max_event_age=TARGET_MAX_EVENT_AGE,
            )

        self.rules: dict[str, events.Rule] = {}
        for schedule in topology.schedules:
            self.rules[schedule.name] = events.Rule(
                self,
                f"{schedule.name.title()}Schedule",
                schedule=events.Schedule.expression(schedule.expression),
                enabled=schedule.enabled,
                targets=[target(functions[schedule.function])],
            )
        self.drift_rule = events.Rule(
            self,
            "DriftRetrain",
            event_pattern=events.EventPattern(
                source=[topology.drift_event_source], detail_type=[topology.drift_event_detail_type]
            ),
            enabled=topology.retrain_on_drift,
            targets=[target(functions[topology.drift_function])],
        )
        invoked = {s.function for s in topology.schedules} | {topology.drift_function}
        for name in sorted(invoked):
            functions[name].configure_async_invoke(
                on_failure=destinations.SqsDestination(self.failures),
                retry_attempts=ASYNC_RETRY_ATTEMPTS,
            )
            acknowledge(
                functions[name],
                "Serverless-LambdaDLQ",
                "Its asynchronous failures go to an on-failure destination (the invocation "
                "failures queue), which records the error and supersedes a dead-letter queue.",
            )
        role = iam.Role(
            self, "CaptureRole", assumed_by=iam.ServicePrincipal("firehose.amazonaws.com")
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "s3:PutObject",
                    "s3:AbortMultipartUpload",
                    "s3:GetBucketLocation",
                    "s3:ListBucketMultipartUploads",
                ],
                resources=[
                    bucket.bucket_arn,
                    bucket.arn_for_objects(f"{topology.capture_prefix}*"),
                    bucket.arn_for_objects(f"{topology.capture_error_prefix}*"),
                ],
            )
        )
        acknowledge_object_wildcards(
            role,
            bucket,
            [topology.capture_prefix, topology.capture_error_prefix],
            "Firehose delivers captured requests (and delivery errors) under {prefix} only.",
        )
        self.stream = firehose.CfnDeliveryStream(
            self,
            "Capture",
            delivery_stream_name=topology.capture_stream,
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="AWS_OWNED_CMK"
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=bucket.bucket_arn,
                role_arn=role.role_arn,
                prefix=topology.capture_prefix,
                error_output_prefix=topology.capture_error_prefix,
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=300, size_in_m_bs=5
                ),
                compression_format="UNCOMPRESSED",
            ),
        )
        default_bus = cdk.Stack.of(self).format_arn(
            service="events", resource="event-bus", resource_name="default"
        )
        for name, spec in topology.functions.items():
            if spec.firehose_put:
                functions[name].add_to_role_policy(
                    iam.PolicyStatement(
                        actions=["firehose:PutRecordBatch", "firehose:PutRecord"],
                        resources=[self.stream.attr_arn],
                    )
                )
            if spec.events_put:
                functions[name].add_to_role_policy(
                    iam.PolicyStatement(actions=["events:PutEvents"], resources=[default_bus])
                )
