"""incoming/ -> S3 notification -> SQS (with its dead-letter queue) -> the batch function."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
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
        acknowledge(
            _notifications_handler_role(self),
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's bucket-notification handler: log writes to its own log group only.",
        )
        function.add_event_source(
            sources.SqsEventSource(
                self.queue, batch_size=topology.sqs_batch_size, report_batch_item_failures=True
            )
        )


def _notifications_handler_role(scope: Construct) -> IConstruct:
    """The role of the stack's singleton Lambda that CDK adds to configure bucket
    notifications (a construct aws_s3 does not export)."""
    stack = cdk.Stack.of(scope)
    handler = next(
        child
        for child in stack.node.children
        if child.node.id.startswith("BucketNotificationsHandler")
    )
    return handler.node.find_child("Role")
