"""incoming/ -> S3 notification -> SQS (with its dead-letter queue) -> the batch function."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from infrastructure.nag import acknowledge
from skylift.topology import Topology


class BatchTrigger(Construct):
    """incoming/ -> S3 notification -> SQS (with DLQ) -> the batch function."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topology: Topology,
        bucket: s3.Bucket,
        function: lambda_.Function,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id)
        self.dlq = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=cdk.Duration.seconds(topology.queue_visibility_timeout_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=topology.max_receive_count, queue=self.dlq
            ),
        )
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.SqsDestination(self.queue),
            s3.NotificationKeyFilter(prefix=topology.incoming_prefix),
        )
        handler = _notifications_handler(self)
        # CDK's handler would log to a group Lambda creates, kept forever: point it at one
        # with the configured retention, created before the handler first runs.
        handler_logs = logs.LogGroup(
            self,
            "NotificationHandlerLogs",
            retention=log_retention,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        cfn_handler = handler.node.default_child
        assert isinstance(cfn_handler, cdk.CfnResource)
        cfn_handler.add_property_override(
            "LoggingConfig", {"LogGroup": handler_logs.log_group_name}
        )
        cfn_handler.node.add_dependency(handler_logs)
        acknowledge(
            handler.node.find_child("Role"),
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's bucket-notification handler: log writes to its own log group only.",
        )
        function.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=topology.sqs_batch_size,
                max_concurrency=topology.sqs_max_concurrency,
                report_batch_item_failures=True,
            )
        )
        # Why the Serverless pack's failure-destination findings do not apply to this path.
        mapping = next(c for c in function.node.children if c.node.id.startswith("SqsEventSource"))
        acknowledge(
            mapping,
            "Serverless-LambdaEventSourceMappingDestination",
            "Lambda supports on-failure destinations for stream and Kafka sources, not SQS: a "
            "failed message returns to the queue and moves to its redrive dead-letter queue "
            "after maxReceiveCount.",
        )
        acknowledge(
            function,
            "Serverless-LambdaDLQ",
            "Invoked synchronously by the SQS event source mapping only: failures go to the "
            "batch queue's redrive dead-letter queue.",
        )
        acknowledge(
            self.dlq,
            "Serverless-SQSRedrivePolicy",
            "This is the batch queue's dead-letter queue (alarmed); it has no queue after it.",
        )


def _notifications_handler(scope: Construct) -> IConstruct:
    """The stack's singleton Lambda that CDK adds to configure bucket notifications (a
    construct aws_s3 does not export)."""
    stack = cdk.Stack.of(scope)
    return next(
        child
        for child in stack.node.children
        if child.node.id.startswith("BucketNotificationsHandler")
    )
