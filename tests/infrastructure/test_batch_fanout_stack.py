"""The batch fan-out in the synthesized template: a DISTRIBUTED Map state machine whose
definition is the one the local stack runs, its least-privilege role, and its alarm."""

from __future__ import annotations

import json

from skylift.batch.state_machine import FUNCTION_ARN, PERMANENT_ERRORS, definition
from skylift.local.state_machine import LocalStateMachine
from skylift.topology import describe


def _resources(template_json, kind):
    return {name: r for name, r in template_json["Resources"].items() if r["Type"] == kind}


def _machine(template_json):
    (machine,) = _resources(template_json, "AWS::StepFunctions::StateMachine").values()
    return machine["Properties"]


def _function_id(template_json, handler):
    for name, resource in _resources(template_json, "AWS::Lambda::Function").items():
        if resource["Properties"].get("Handler") == handler:
            return name
    raise AssertionError(handler)


def test_definition_is_the_one_the_local_stack_runs(template_json, churn_config):
    properties = _machine(template_json)
    deployed = json.loads(properties["DefinitionString"])
    local = definition(describe(churn_config))
    assert deployed == local  # same states, retries, concurrency: parity by construction
    # ...and the local runner is handed that very description.
    runner = LocalStateMachine(local, invoke=lambda *a: None, s3=None)
    assert runner.definition["States"].keys() == deployed["States"].keys()
    fanout = _function_id(template_json, "functions.batch.fanout.handler")
    assert properties["DefinitionSubstitutions"] == {
        FUNCTION_ARN[2:-1]: {"Fn::GetAtt": [fanout, "Arn"]}
    }


def test_map_is_distributed_with_concurrency_retries_and_no_tolerated_failures(
    template_json, churn_config
):
    states = json.loads(_machine(template_json)["DefinitionString"])["States"]
    assert list(states) == ["Plan", "ScoreRanges", "Commit", "RecordFailure", "Failed"]
    fan = states["ScoreRanges"]
    assert fan["Type"] == "Map"
    assert fan["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert fan["MaxConcurrency"] == churn_config.batch.fanout_max_concurrency
    assert fan["ToleratedFailurePercentage"] == 0
    assert fan["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    child = fan["ItemProcessor"]["States"]["ScoreRange"]
    permanent, transient = child["Retry"]
    assert permanent == {"ErrorEquals": PERMANENT_ERRORS, "MaxAttempts": 0}
    assert transient["ErrorEquals"] == ["States.ALL"]
    assert transient["BackoffRate"] > 1 and transient["MaxAttempts"] >= 2
    for name in ("Plan", "ScoreRanges", "Commit"):
        assert states[name]["Catch"][0]["Next"] == "RecordFailure"
    assert states["RecordFailure"]["Next"] == "Failed"
    assert states["Failed"]["Type"] == "Fail"


def _statements(template_json, role_id):
    for policy in _resources(template_json, "AWS::IAM::Policy").values():
        roles = policy["Properties"]["Roles"]
        if {"Ref": role_id} in roles:
            yield from policy["Properties"]["PolicyDocument"]["Statement"]


def test_state_machine_role_is_least_privilege(template_json):
    role_id = _machine(template_json)["RoleArn"]["Fn::GetAtt"][0]
    fanout = _function_id(template_json, "functions.batch.fanout.handler")
    statements = list(_statements(template_json, role_id))
    actions = sorted(a for s in statements for a in _list(s["Action"]))
    assert actions == sorted(
        [
            "lambda:InvokeFunction",
            "s3:GetObject",
            "states:StartExecution",
            "states:DescribeExecution",
            "states:StopExecution",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
            "xray:PutTelemetryRecords",
            "xray:PutTraceSegments",
            "logs:CreateLogDelivery",
            "logs:DeleteLogDelivery",
            "logs:DescribeLogGroups",
            "logs:DescribeResourcePolicies",
            "logs:GetLogDelivery",
            "logs:ListLogDeliveries",
            "logs:PutResourcePolicy",
            "logs:UpdateLogDelivery",
        ]
    )
    invoke = next(s for s in statements if s["Action"] == "lambda:InvokeFunction")
    assert {"Fn::GetAtt": [fanout, "Arn"]} in _list(invoke["Resource"])
    read = next(s for s in statements if s["Action"] == "s3:GetObject")
    assert "batch-fanout/*" in json.dumps(read["Resource"])


def test_batch_function_may_only_start_the_fan_out(template_json):
    batch = _function_id(template_json, "functions.batch.app.handler")
    function = template_json["Resources"][batch]["Properties"]
    assert "SKYLIFT_FANOUT_STATE_MACHINE_ARN" in function["Environment"]["Variables"]
    role_id = function["Role"]["Fn::GetAtt"][0]
    states_actions = {
        a
        for s in _statements(template_json, role_id)
        for a in _list(s["Action"])
        if a.startswith("states:")
    }
    assert states_actions == {"states:StartExecution"}


def test_failed_executions_alarm_notifies_the_topic(template_json):
    alarms = [
        a["Properties"]
        for a in _resources(template_json, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ExecutionsFailed"
    ]
    assert len(alarms) == 1
    alarm = alarms[0]
    assert alarm["Namespace"] == "AWS/States"
    assert alarm["Threshold"] == 1
    assert alarm["AlarmActions"]


def test_state_machine_logs_everything_and_traces(template_json):
    properties = _machine(template_json)
    assert properties["LoggingConfiguration"]["Level"] == "ALL"
    assert properties["TracingConfiguration"] == {"Enabled": True}


def _list(value):
    return value if isinstance(value, list) else [value]
