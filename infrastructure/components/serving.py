"""The score function behind a regional REST API: API keys and a usage plan, or IAM."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infrastructure.components.retention import log_retention
from infrastructure.nag import acknowledge
from skylift.config import SkyliftConfig
from skylift.topology import API_BINARY_MEDIA_TYPES, Topology

STAGE_NAME = "prod"


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
            retention=log_retention(config.deploy.log_retention_days),
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
            binary_media_types=list(API_BINARY_MEDIA_TYPES),
            cloud_watch_role=True,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
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
        # API Gateway would create its execution-log group itself, kept forever: create it
        # first, under the name API Gateway writes to, with the configured retention.
        stage = self.api.deployment_stage
        execution_logs = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"API-Gateway-Execution-Logs_{self.api.rest_api_id}/{STAGE_NAME}",
            retention=log_retention(config.deploy.log_retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        stage.node.add_dependency(execution_logs)
        acknowledge(
            function,
            "Serverless-LambdaDLQ",
            "Invoked synchronously by API Gateway only: an error goes back to the caller, "
            "there is no asynchronous event to dead-letter.",
        )
        acknowledge(
            self.api,
            "AwsSolutions-APIG2",
            "The function validates every request against the model's schema and answers 400 "
            "with field details.",
        )
        acknowledge(
            self.api.deployment_stage,
            "AwsSolutions-APIG3",
            "WAF is an account-level choice; throttling and quotas come from the usage plan.",
        )
        for rule, reason in (
            (
                "AwsSolutions-APIG4",
                "Requests are authorised by API key + usage plan (or IAM when [api].auth = 'iam').",
            ),
            ("AwsSolutions-COG4", "No Cognito: callers are services holding API keys or IAM."),
        ):
            acknowledge(self.api.root, rule, reason)  # every method hangs under the root
        acknowledge(
            self.api.node.find_child("CloudWatchRole"),
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level role for access and execution logs.",
        )
        integration = apigw.LambdaIntegration(target)
        for route in topology.routes:
            resource = self.api.root.resource_for_path(route.path)
            resource.add_method(route.method, integration)
        # Other methods on a route reach the function too (ANY beside the route's own), which
        # answers 405 with Allow; API Gateway would answer 403 "Missing Authentication Token".
        for path in dict.fromkeys(route.path for route in topology.routes):
            self.api.root.resource_for_path(path).add_method("ANY", integration)
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
