"""Alarms to an SNS topic and a dashboard, on the metrics skylift.observability names."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infrastructure.components.scheduling import TARGET_MAX_EVENT_AGE, TARGET_RETRY_ATTEMPTS
from skylift.config import SkyliftConfig
from skylift.observability import Metric
from skylift.topology import METRICS_NAMESPACE, SERVICE_NAME, Topology


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
        invocation_failures: sqs.Queue,
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
            "invocation-failures": make_alarm(
                "InvocationFailures",
                invocation_failures.metric_approximate_number_of_messages_visible(
                    period=cdk.Duration.minutes(5)
                ),
                1,
                "A scheduled or drift-triggered run failed after its retries, or could not be "
                "delivered (the message says which and why).",
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
        self.alarms["monitor"] = make_alarm(
            "MonitorFailed",
            functions["monitor"].metric_errors(period=cdk.Duration.hours(1), statistic="Sum"),
            1,
            "A monitoring run failed: drift and live accuracy went unchecked.",
        )
        self.alarms["candidate-errors"] = make_alarm(
            "CandidateErrors",
            cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=Metric.VERSION_ERRORS,
                dimensions_map={**dimensions, "role": "candidate"},
                statistic="Sum",
                period=cdk.Duration.minutes(1),
            ),
            topology.candidate_alarm_errors,
            "The canary failed on requests (the champion answered them); the candidate is "
            "aborted at once by the rollout function.",
        )
        for alarm in self.alarms.values():
            alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        # The alarm's state change aborts the candidate without waiting for the schedule:
        # EventBridge's rule matches this alarm going to ALARM and invokes the rollout
        # function (asynchronously, the same failures queue as the schedules' targets).
        self.candidate_abort_rule = events.Rule(
            self,
            "CandidateAbort",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                resources=[self.alarms["candidate-errors"].alarm_arn],
                detail={"state": {"value": ["ALARM"]}},
            ),
            targets=[
                targets.LambdaFunction(
                    functions[topology.rollout_function],
                    dead_letter_queue=invocation_failures,
                    retry_attempts=TARGET_RETRY_ATTEMPTS,
                    max_event_age=TARGET_MAX_EVENT_AGE,
                )
            ],
        )
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
