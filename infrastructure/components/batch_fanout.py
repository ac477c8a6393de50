"""The batch fan-out: a Step Functions state machine with a DISTRIBUTED Map over a huge
file's ranges, its least-privilege role, its logs and an alarm on failed executions.

The definition is skylift.batch.state_machine's (the local stack runs the same dict), with the
fan-out function's ARN substituted. The batch function may start executions, nothing more.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infrastructure.components.retention import log_retention
from infrastructure.nag import acknowledge, acknowledge_object_wildcards
from skylift.batch.state_machine import definition
from skylift.topology import Topology


class BatchFanout(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topology: Topology,
        bucket: s3.IBucket,
        fanout_function: lambda_.Function,
        batch_function: lambda_.Function,
        topic: sns.ITopic,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)
        name = topology.fanout_state_machine
        # Built from the known name, not the resource: a role naming its own state machine
        # would be a circular reference.
        machine_arn = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=name,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        executions_arn = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{name}/*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("states.amazonaws.com"))
        policy = iam.Policy(
            self,
            "Policy",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[fanout_function.function_arn],
                ),
                # The Map's ItemReader reads the plan's ranges.json.
                iam.PolicyStatement(
                    actions=["s3:GetObject"],
                    resources=[bucket.arn_for_objects(f"{topology.fanout_staging_prefix}*")],
                ),
                # A Distributed Map runs its children as executions of this state machine.
                iam.PolicyStatement(actions=["states:StartExecution"], resources=[machine_arn]),
                iam.PolicyStatement(
                    actions=["states:DescribeExecution", "states:StopExecution"],
                    resources=[executions_arn],
                ),
            ],
        )
        acknowledge_object_wildcards(
            policy,
            bucket,
            [topology.fanout_staging_prefix],
            "The Map reads the ranges the plan staged under {prefix}.",
        )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
            f"<AWS::AccountId>:execution:{name}/*]",
            "The Distributed Map's child executions, whose names Step Functions chooses.",
        )
        log_group = logs.LogGroup(
            self,
            "Logs",
            retention=log_retention(log_retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=name,
            definition_body=sfn.DefinitionBody.from_string(json.dumps(definition(topology))),
            definition_substitutions={"FanoutFunctionArn": fanout_function.function_arn},
            role=role,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL),
        )
        self.state_machine.node.add_dependency(policy)
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray tracing and CloudWatch Logs delivery, which CDK grants for tracing and "
            "logging: their actions take no resource ARN.",
        )
        batch_function.add_environment(
            "SKYLIFT_FANOUT_STATE_MACHINE_ARN", self.state_machine.state_machine_arn
        )
        self.state_machine.grant_start_execution(batch_function)
        self.alarm = cloudwatch.Alarm(
            self,
            "FailedExecutions",
            metric=self.state_machine.metric_failed(
                period=cdk.Duration.minutes(5), statistic="Sum"
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="A batch fan-out failed: its failed manifest names the range.",
        )
        self.alarm.add_alarm_action(cw_actions.SnsAction(topic))
