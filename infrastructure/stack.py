"""SkyliftStack: the whole deployment for one SkyliftConfig, one construct per concern.

Built from :func:`skylift.topology.describe`, the same description the local stack
provisions from, so the two cannot drift apart unnoticed (tests/infrastructure checks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from skylift.config import SkyliftConfig
from skylift.observability import Metric
from skylift.topology import METRICS_NAMESPACE, SERVICE_NAME, FunctionSpec, Topology, describe

__all__ = ["SkyliftStack"]

RUNTIMES = {
    "3.11": lambda_.Runtime.PYTHON_3_11,
    "3.12": lambda_.Runtime.PYTHON_3_12,
    "3.13": lambda_.Runtime.PYTHON_3_13,
}


class Storage(Construct):
    """The data bucket (encrypted, versioned, private, TLS-only, logged) and its log bucket."""

    def __init__(self, scope: Construct, id: str, topology: Topology) -> None:
        super().__init__(scope, id)
        # What every bucket here gets: encrypted, private, TLS-only, versioned, kept on delete.
        secure: dict[str, Any] = {
            "encryption": s3.BucketEncryption.S3_MANAGED,
            "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
            "enforce_ssl": True,
            "versioned": True,
            "removal_policy": cdk.RemovalPolicy.RETAIN,
        }
        self.logs = s3.Bucket(
            self,
            "AccessLogs",
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(365))],
            **secure,
        )
        self.bucket = s3.Bucket(
            self,
            "Data",
            server_access_logs_bucket=self.logs,
            server_access_logs_prefix="data/",
            **secure,
            lifecycle_rules=[
                s3.LifecycleRule(prefix=topology.capture_prefix, expiration=cdk.Duration.days(90)),
                s3.LifecycleRule(
                    prefix=topology.functions["batch"].s3_write[0],  # predictions/
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=cdk.Duration.days(30),
                        )
                    ],
                    expiration=cdk.Duration.days(365),
                ),
                s3.LifecycleRule(
                    prefix=topology.functions["batch"].s3_write[1],  # quarantine/
                    expiration=cdk.Duration.days(90),
                ),
                s3.LifecycleRule(
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(2),
                    noncurrent_version_expiration=cdk.Duration.days(30),
                ),
            ],
        )


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
        layer_dir: Path | None,
    ) -> None:
        super().__init__(scope, id)
        self.functions: dict[str, lambda_.Function] = {}
        deploy = config.deploy
        architecture = (
            lambda_.Architecture.ARM_64
            if deploy.architecture == "arm64"
            else lambda_.Architecture.X86_64
        )
        layer = None
        if deploy.packaging == "layer":
            assert layer_dir is not None
            layer = lambda_.LayerVersion(
                self,
                "Runtime",
                code=lambda_.Code.from_asset(str(layer_dir)),
                compatible_runtimes=[RUNTIMES[deploy.python_version]],
                compatible_architectures=[architecture],
                description="skylift runtime: scikit-learn, pandas, numpy, scipy, powertools",
            )
        for name, spec in topology.functions.items():
            environment = {**spec.environment, "SKYLIFT_STORAGE__BUCKET": bucket.bucket_name}
            log_group = logs.LogGroup(
                self,
                f"{name.title()}Logs",
                retention=_retention(deploy.log_retention_days),
                removal_policy=cdk.RemovalPolicy.DESTROY,
            )
            common: dict[str, Any] = {
                "description": spec.description,
                "memory_size": spec.memory_mb,
                "timeout": cdk.Duration.seconds(spec.timeout_seconds),
                "architecture": architecture,
                "environment": environment,
                "tracing": lambda_.Tracing.ACTIVE,
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
                    layers=[layer] if layer else [],
                    snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS
                    if spec.snap_start
                    else None,
                    **common,
                )
            _grant_prefixes(function, bucket, spec)
            self.functions[name] = function


_RETENTION = [
    (1, logs.RetentionDays.ONE_DAY),
    (7, logs.RetentionDays.ONE_WEEK),
    (14, logs.RetentionDays.TWO_WEEKS),
    (30, logs.RetentionDays.ONE_MONTH),
    (90, logs.RetentionDays.THREE_MONTHS),
    (180, logs.RetentionDays.SIX_MONTHS),
    (365, logs.RetentionDays.ONE_YEAR),
    (731, logs.RetentionDays.TWO_YEARS),
]


def _retention(days: int) -> logs.RetentionDays:
    """The shortest CloudWatch retention that keeps at least ``days``."""
    return next(
        (value for limit, value in _RETENTION if limit >= days), logs.RetentionDays.TEN_YEARS
    )


def _grant_prefixes(function: lambda_.Function, bucket: s3.IBucket, spec: FunctionSpec) -> None:
    """Least privilege: object actions on the prefixes the function uses, and nothing else."""
    if spec.s3_read:
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{p}*") for p in spec.s3_read],
            )
        )
    if spec.s3_write:
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                resources=[bucket.arn_for_objects(f"{p}*") for p in spec.s3_write],
            )
        )
    if spec.s3_list:
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in spec.s3_list]}},
            )
        )


class Serving(Construct):
    """The score function behind an HTTPS REST API with API keys + usage plan (or IAM)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: SkyliftConfig,
        topology: Topology,
        function: lambda_.Function,
    ) -> None:
        super().__init__(scope, id)
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        target: lambda_.IFunction = function
        # SnapStart and provisioned concurrency apply to published versions only: API Gateway
        # invokes the alias of the version each deploy publishes, never $LATEST.
        if config.api.provisioned_concurrency or config.score_snap_start:
            target = lambda_.Alias(
                self,
                "Live",
                alias_name="live",
                version=function.current_version,
                provisioned_concurrent_executions=config.api.provisioned_concurrency,
            )
        iam_auth = config.api.auth == "iam"
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"skylift-{topology.model_name}",
            description=f"Scoring API for model {topology.model_name}",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,
            deploy_options=apigw.StageOptions(
                stage_name="prod",
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                tracing_enabled=True,
                throttling_rate_limit=config.api.throttle_rate,
                throttling_burst_limit=config.api.throttle_burst,
            ),
            default_method_options=apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType.IAM
                if iam_auth
                else apigw.AuthorizationType.NONE,
                api_key_required=not iam_auth,
            ),
        )
        integration = apigw.LambdaIntegration(target)
        for route in topology.routes:
            resource = self.api.root.resource_for_path(route.path)
            resource.add_method(route.method, integration)
        # Anything else reaches the function too, so unknown paths get its JSON 404.
        self.api.root.add_resource("{proxy+}").add_method("ANY", integration)
        if not iam_auth:
            plan = self.api.add_usage_plan(
                "UsagePlan",
                name=f"skylift-{topology.model_name}",
                throttle=apigw.ThrottleSettings(
                    rate_limit=config.api.throttle_rate, burst_limit=config.api.throttle_burst
                ),
                quota=(
                    apigw.QuotaSettings(limit=config.api.quota_per_day, period=apigw.Period.DAY)
                    if config.api.quota_per_day
                    else None
                ),
            )
            key = self.api.add_api_key("ApiKey", api_key_name=f"skylift-{topology.model_name}")
            plan.add_api_key(key)
            plan.add_api_stage(stage=self.api.deployment_stage)


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
        function.add_event_source(
            sources.SqsEventSource(
                self.queue, batch_size=topology.sqs_batch_size, report_batch_item_failures=True
            )
        )


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
        self.rules: dict[str, events.Rule] = {}
        for schedule in topology.schedules:
            self.rules[schedule.name] = events.Rule(
                self,
                f"{schedule.name.title()}Schedule",
                schedule=events.Schedule.expression(schedule.expression),
                enabled=schedule.enabled,
                targets=[targets.LambdaFunction(functions[schedule.function])],
            )
        self.drift_rule = events.Rule(
            self,
            "DriftRetrain",
            event_pattern=events.EventPattern(
                source=[topology.drift_event_source], detail_type=[topology.drift_event_detail_type]
            ),
            enabled=topology.retrain_on_drift,
            targets=[targets.LambdaFunction(functions["retrain"])],
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
        functions["score"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["firehose:PutRecordBatch", "firehose:PutRecord"],
                resources=[self.stream.attr_arn],
            )
        )
        functions["monitor"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["events:PutEvents"],
                resources=[
                    cdk.Stack.of(self).format_arn(
                        service="events", resource="event-bus", resource_name="default"
                    )
                ],
            )
        )


class Observability(Construct):
    """Alarms to an SNS topic, and a dashboard of the service's health."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: SkyliftConfig,
        topology: Topology,
        api: apigw.RestApi,
        dlq: sqs.Queue,
        functions: dict[str, lambda_.Function],
    ) -> None:
        super().__init__(scope, id)
        self.topic = sns.Topic(
            self, "Alarms", display_name=f"skylift {topology.model_name} alarms", enforce_ssl=True
        )
        if config.deploy.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.deploy.alarm_email))
        dimensions = {"service": SERVICE_NAME, "model": topology.model_name}

        def metric(name: str, statistic: str = "Average") -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=name,
                dimensions_map=dimensions,
                statistic=statistic,
                period=cdk.Duration.minutes(5),
            )

        at_least = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD

        def make_alarm(
            id: str,
            watched: cloudwatch.IMetric,
            threshold: float,
            description: str,
            operator: cloudwatch.ComparisonOperator = at_least,
        ) -> cloudwatch.Alarm:
            return cloudwatch.Alarm(
                self,
                id,
                metric=watched,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=operator,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )

        self.alarms = {
            "api-5xx": make_alarm(
                "Api5xx",
                api.metric_server_error(period=cdk.Duration.minutes(5), statistic="Sum"),
                5,
                "The scoring API answered 5xx (never a user's mistake: a fault of ours).",
            ),
            "dlq": make_alarm(
                "DeadLetters",
                dlq.metric_approximate_number_of_messages_visible(period=cdk.Duration.minutes(5)),
                1,
                "A batch file failed every retry and sits in the dead-letter queue.",
            ),
            "drift": make_alarm(
                "Drift",
                metric(Metric.DRIFT_MAX_PSI, "Maximum"),
                config.monitor.psi_threshold,
                "An input feature drifted past the PSI threshold.",
                cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            ),
            "retrain": make_alarm(
                "RetrainFailed",
                functions["retrain"].metric_errors(period=cdk.Duration.hours(1), statistic="Sum"),
                1,
                "The scheduled retrain failed.",
            ),
        }
        for alarm in self.alarms.values():
            alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"skylift-{topology.model_name}"
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Latency (ms)",
                left=[metric(Metric.LATENCY, "p50"), metric(Metric.LATENCY, "p99")],
            ),
            cloudwatch.GraphWidget(
                title="Errors",
                left=[
                    metric(Metric.CLIENT_ERRORS, "Sum"),
                    metric(Metric.SERVER_ERRORS, "Sum"),
                    api.metric_server_error(statistic="Sum"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Throughput",
                left=[
                    metric(Metric.REQUESTS, "Sum"),
                    metric(Metric.RECORDS_SCORED, "Sum"),
                    metric(Metric.BATCH_ROWS_SCORED, "Sum"),
                ],
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Dead-letter queue depth",
                left=[dlq.metric_approximate_number_of_messages_visible()],
            ),
            cloudwatch.GraphWidget(
                title="Drift (PSI)",
                left=[
                    metric(Metric.DRIFT_MAX_PSI, "Maximum"),
                    metric(Metric.PREDICTION_PSI, "Maximum"),
                ],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(
                        value=config.monitor.psi_threshold, label="threshold"
                    )
                ],
            ),
            cloudwatch.GraphWidget(
                title="Drift per feature",
                left=[
                    cloudwatch.MathExpression(
                        expression=f"SEARCH('{{{METRICS_NAMESPACE},feature,model,service}} MetricName=\"{Metric.FEATURE_PSI}\" model=\"{topology.model_name}\"', 'Maximum', 300)",
                        label="",
                        period=cdk.Duration.minutes(5),
                    )
                ],
            ),
            cloudwatch.GraphWidget(
                title="Live metrics",
                left=[
                    metric(Metric.LIVE_ACCURACY),
                    metric(Metric.LIVE_ROC_AUC),
                    metric(Metric.LIVE_RMSE),
                ],
            ),
        )


class SkyliftStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: SkyliftConfig,
        code_dir: Path,
        layer_dir: Path | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        topology = describe(config)
        self.granted_prefixes = sorted(
            {p for spec in topology.functions.values() for p in (*spec.s3_read, *spec.s3_write)}
            | {topology.capture_prefix, topology.capture_error_prefix}
        )
        for key, value in topology.tags.items():
            cdk.Tags.of(self).add(key, value)
        self.storage = Storage(self, "Storage", topology)
        self.functions = Functions(
            self,
            "Functions",
            config=config,
            topology=topology,
            bucket=self.storage.bucket,
            code_dir=code_dir,
            layer_dir=layer_dir,
        )
        fns = self.functions.functions
        self.serving = Serving(
            self, "Serving", config=config, topology=topology, function=fns["score"]
        )
        self.batch = BatchTrigger(
            self, "Batch", topology=topology, bucket=self.storage.bucket, function=fns["batch"]
        )
        self.scheduling = Scheduling(
            self, "Scheduling", topology=topology, bucket=self.storage.bucket, functions=fns
        )
        self.observability = Observability(
            self,
            "Observability",
            config=config,
            topology=topology,
            api=self.serving.api,
            dlq=self.batch.dlq,
            functions=fns,
        )
        cdk.CfnOutput(self, "ApiUrl", value=self.serving.api.url)
        cdk.CfnOutput(self, "BucketName", value=self.storage.bucket.bucket_name)
